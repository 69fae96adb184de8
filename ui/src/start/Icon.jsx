// A few line icons drawn inline (no icon font, nothing fetched), hidden from screen readers: the button's words say it.
const PATHS = {
  camera: "M4 8h3l2-3h6l2 3h3v11H4z M12 17a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  upload: "M12 16V4 M7 9l5-5 5 5 M4 15v5h16v-5",
  mic: "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z M5 11a7 7 0 0 0 14 0 M12 18v3",
  trash: "M4 7h16 M9 7V4h6v3 M6 7l1 13h10l1-13",
  plus: "M12 5v14 M5 12h14",
  play: "M8 5v14l11-7z",
  close: "M6 6l12 12 M18 6L6 18",
  folder: "M3 6h6l2 2h10v11H3z",
  pencil: "M4 20h4L19 9l-4-4L4 16z M13 7l4 4",
  download: "M12 4v12 M7 11l5 5 5-5 M4 20h16",
};

export default function Icon({ name }) {
  return (
    <svg className="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
      <path d={PATHS[name]} fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" />
    </svg>
  );
}
