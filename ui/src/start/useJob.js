// A training job followed live: its last status (from the job's Server-Sent Events) and the running loss points the
// curves draw, as the Train page follows one. The job's id is kept in the browser under `key`, so a reload or a page
// change comes back to the same job.
import { useEffect, useRef, useState } from "react";
import { call } from "../api.js";
import { useStored } from "../route.js";

export function useJob(key) {
  const [jobId, setJobId] = useStored(key, null);
  const [job, setJob] = useState(null);
  const [points, setPoints] = useState([]); // [fraction of the schedule in epochs, running loss]
  const source = useRef(null);

  function watch(id) {
    setJobId(id);
    if (source.current) source.current.close();
    const events = new EventSource(`/api/jobs/${id}/events`);
    source.current = events;
    events.addEventListener("status", (e) => {
      const status = JSON.parse(e.data);
      setJob(status);
      const p = status.progress;
      if (p && p.running && p.running.loss !== undefined && p.steps) {
        const x = p.epoch - 1 + p.step / p.steps;
        setPoints((old) => (old.length && old[old.length - 1][0] >= x ? old : [...old, [x, p.running.loss]]));
      }
    });
    events.addEventListener("end", () => events.close());
  }

  useEffect(() => { // the job of before a reload: its state now, and its events while it goes on
    if (jobId) call(`/api/jobs/${jobId}`).then((status) => { setJob(status); watch(jobId); }, () => setJobId(null));
    return () => source.current && source.current.close();
  }, []);

  function start(id) {
    setPoints([]);
    setJob({ id, state: "starting" });
    watch(id);
  }
  function forget() {
    if (source.current) source.current.close();
    setJob(null);
    setJobId(null);
    setPoints([]);
  }
  return { job, points, start, forget };
}
