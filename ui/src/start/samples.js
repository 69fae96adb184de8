// The Start page's samples API (/api/samples, src/deepworks/ui/routes/samples.py): each call answers the dataset's
// listing as it is after the change, or throws the server's message.
import { call } from "../api.js";

const base = (dataset) => `/api/samples/${encodeURIComponent(dataset)}`;
const classPath = (dataset, name) => `${base(dataset)}/${encodeURIComponent(name)}`;

// The dataset's classes, or null when it holds nothing yet (a new project).
export async function listing(dataset) {
  const response = await fetch(base(dataset));
  if (response.status === 404) return null;
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// Files (pictures, clips or zips of them) added to a class; the class and the dataset are made when new.
export function addSamples(dataset, task, name, files) {
  const form = new FormData();
  form.append("dataset", dataset);
  form.append("class", name);
  form.append("task", task);
  for (const f of files) form.append("files", f, f.name || "sample");
  return call("/api/samples", { method: "POST", body: form });
}

export const renameClass = (dataset, name, to) =>
  call(classPath(dataset, name), { method: "PATCH", json: { name: to } });
export const deleteClass = (dataset, name) => call(classPath(dataset, name), { method: "DELETE" });
export const deleteSample = (dataset, name, file) =>
  call(`${classPath(dataset, name)}/${encodeURIComponent(file)}`, { method: "DELETE" });
export const deleteDataset = (dataset) => call(base(dataset), { method: "DELETE" });

// The files of a folder that are samples of this kind (by their type or suffix, and zips), and how many were left
// out: a folder holds notes, hidden files and the like beside its pictures, and one of those would refuse the upload.
export function samplesOf(files, kind) {
  const wanted = (f) => !f.name.startsWith(".") && (f.type.startsWith(kind.mime) || kind.suffixes.test(f.name));
  const kept = files.filter(wanted);
  return [kept, files.length - kept.length];
}

// Every file of a drop, those inside dropped folders as well (the browser's file-system entries, walked): the
// entries are taken while the drop event lasts, as the browser empties them after it.
export function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.some((e) => e.isDirectory)) return Promise.resolve([[...dataTransfer.files], false]);
  return Promise.all(entries.map(filesUnder)).then((lists) => [lists.flat(), true]);
}

async function filesUnder(entry) {
  if (entry.isFile) return [await new Promise((done, fail) => entry.file(done, fail))];
  const reader = entry.createReader();
  const found = [];
  for (;;) { // a reader answers its folder in parts, then an empty part
    const part = await new Promise((done, fail) => reader.readEntries(done, fail));
    if (part.length === 0) break;
    found.push(...part);
  }
  return (await Promise.all(found.map(filesUnder))).flat();
}

// What the samples are, by the kind a task's card takes in: the words the page uses and the files it accepts.
export const KINDS = {
  image: { samples: "pictures", one: "picture", accept: "image/*,.zip", project: "my-pictures", camera: true,
           mime: "image/", suffixes: /\.(png|jpe?g|gif|bmp|webp|tiff?|zip)$/i, pretrained: "efficientnet_lite0",
           title: "Pictures", example: "photos of your cat and of your dog" },
  audio: { samples: "sound clips", one: "sound clip", accept: "audio/*,.wav,.flac,.ogg,.oga,.zip", project: "my-sounds",
           microphone: true, mime: "audio/", suffixes: /\.(wav|flac|ogg|oga|zip)$/i, title: "Sounds",
           example: "a clap, a whistle and silence" },
};

// The tasks the Start page trains: those whose card takes pictures or sounds in and gives classes out.
export function startTasks(info) {
  return Object.values(info.task_cards || {}).filter((card) => KINDS[card.inputs[0]] && card.outputs[0] === "classes");
}
