// A training job followed live: its last status (from the job's Server-Sent Events) and the running loss points the
// curves draw. The job's id is kept in the browser under `key`, so a reload or a page change comes back to the same
// job. `onStatus(status)` hears every status the job sends.
import { useEffect, useRef, useState } from "react";
import { call } from "../api.js";
import { useStored } from "../route.js";

export function useJob(key, onStatus = () => {}) {
  const [jobId, setJobId] = useStored(key, null);
  const [job, setJob] = useState(null);
  const [points, setPoints] = useState([]); // [fraction of the schedule in epochs, running loss]
  const source = useRef(null);
  const heard = useRef(onStatus);
  heard.current = onStatus;
  const latest = useRef(0); // the last job asked for: an answer about an earlier one, come late, is dropped
  const wanted = useRef(null); // that job's id

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
      heard.current(status);
    });
    events.addEventListener("end", () => events.close());
    // A dropped stream is left to the browser, which reconnects and gets the job's state afresh; closing it here
    // once froze a search's page on "running" for good.
  }

  // A job that exists (of before a reload, or named in the address): its state now, then its events while it goes on.
  function open(id) {
    const asked = ++latest.current;
    wanted.current = id;
    setPoints([]);
    return call(`/api/jobs/${id}`).then((status) => {
      if (asked !== latest.current) return; // another job was opened or started since
      setJob(status);
      watch(id);
    }, (e) => { if (asked === latest.current) forget(); throw e; });
  }

  useEffect(() => {
    if (jobId) open(jobId).catch(() => {});
    return () => source.current && source.current.close();
  }, []);

  // A job just started; `from`, the job it resumes: its fields and its curves are kept until the new one speaks.
  function start(id, from = null) {
    latest.current += 1;
    wanted.current = id;
    if (!from) setPoints([]);
    setJob({ ...from, id, state: "starting" });
    watch(id);
  }
  // The job an address names: opened, unless it is the one asked for last (shown, or on its way), which stays.
  function openUnlessAsked(id) {
    return id === wanted.current ? Promise.resolve() : open(id);
  }
  function forget() {
    wanted.current = null;
    if (source.current) source.current.close();
    setJob(null);
    setJobId(null);
    setPoints([]);
  }
  return { job, points, start, open, openUnlessAsked, forget };
}
