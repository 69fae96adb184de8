// A spinner and what is being waited for (role=status: a screen reader says it). Shown the moment work starts.
export default function Busy({ children, testid }) {
  return (
    <p className="busy" role="status" data-testid={testid}>
      <span className="spinner" aria-hidden="true" /> {children}
    </p>
  );
}
