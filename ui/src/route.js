// Where the page is, in its address: / and /start (the first-run flow), /data, /model, /train, /results, /try,
// /trust, /export; a run's own pages /runs/NAME/results, /runs/NAME/try, ...; a job's panel /jobs/ID and an AutoML
// search's /automl/NAME (the Train page showing it). So a reload stays, Back goes back, and a page can be linked.
import { useEffect, useState } from "react";

export const PAGES = ["Start", "Data", "Model", "Train", "Results", "Try", "Trust", "Export"];
const RUN_PAGES = ["Results", "Try", "Trust", "Export"]; // the pages that show one run

// {page, run, job, search} from a path; anything else (/ included) is the Start page.
export function parse(path) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const named = (word) => PAGES.find((p) => p.toLowerCase() === (word || "").toLowerCase());
  if (parts[0] === "runs" && parts[1]) return { page: named(parts[2]) || "Results", run: parts[1] };
  if (parts[0] === "jobs" && parts[1]) return { page: "Train", run: null, job: parts[1] };
  if (parts[0] === "automl" && parts[1]) return { page: "Train", run: null, search: parts[1] };
  return { page: named(parts[0]) || "Start", run: null };
}

// The path of a page, with the run where the page shows one, and the job or search the Train page shows.
export function pathOf(page, run, { job, search } = {}) {
  const part = encodeURIComponent;
  if (page === "Train" && job) return `/jobs/${part(job)}`;
  if (page === "Train" && search) return `/automl/${part(search)}`;
  if (run && RUN_PAGES.includes(page)) return `/runs/${part(run)}/${page.toLowerCase()}`;
  return `/${page.toLowerCase()}`;
}

// [where, go(page, run, {job, search}), choose(run)]: `go` pushes a history entry; Back and Forward come back through
// popstate.
export function useRoute() {
  const [where, setWhere] = useState(() => parse(window.location.pathname));
  useEffect(() => {
    const back = () => setWhere(parse(window.location.pathname));
    window.addEventListener("popstate", back);
    return () => window.removeEventListener("popstate", back);
  }, []);
  useEffect(() => { document.title = `${where.page}${where.run ? ` · ${where.run}` : ""} · deepworks`; }, [where]);
  function go(page, run = where.run, shown = {}) {
    const path = pathOf(page, run, shown);
    if (path !== window.location.pathname) window.history.pushState(null, "", path);
    setWhere({ page, run, ...shown });
  }
  // The run the pages show: on a page of a run its address changes (a history entry); elsewhere (a job that just
  // finished on the Train page) only the choice does, so a job's late news never moves the page.
  function choose(run) {
    if (RUN_PAGES.includes(where.page)) return go(where.page, run);
    return setWhere((w) => ({ ...w, run }));
  }
  return [where, go, choose];
}

// A state kept in the browser (localStorage) under `key`, so form values survive a page change and a reload;
// `kept(value)` is what is written (leave out what is large or made again, as a data preview).
export function useStored(key, initial, kept = (v) => v) {
  const [value, setValue] = useState(() => {
    try {
      const kept = window.localStorage.getItem(key);
      return kept === null ? initial : JSON.parse(kept);
    } catch {
      return initial;
    }
  });
  useEffect(() => {
    try {
      window.localStorage.setItem(key, JSON.stringify(kept(value)));
    } catch { /* private windows may refuse: the value then lasts as long as the page */ }
  }, [key, value]);
  return [value, setValue];
}
