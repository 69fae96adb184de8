// The server's jobs (/api/jobs, newest first), found by what they did: the run a job trained, the search it ran.
import { call } from "./api.js";

const last = (path) => (path ? String(path).split("/").pop() : null);
export const runOf = (job) => last(job?.run);
export const searchOf = (job) => last(job?.automl?.out);

// The id of the newest job that `is(job)`, or an error naming `what` when none is.
export async function newestJob(is, what) {
  const { jobs } = await call("/api/jobs");
  const found = jobs.find(is);
  if (!found) throw new Error(`Expected a job of this server for ${what}. Received: none (GET /api/jobs lists them).`);
  return found.id;
}
