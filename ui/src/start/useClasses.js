// A project's classes on the Start page: the server's listing (/api/samples) and the order this browser shows them
// in. A class named but without a sample yet lives in the browser only, until its first sample makes it on the server;
// the order is kept (made, renamed, removed here), so a class never jumps when it gets its first sample.
import { useEffect, useState } from "react";
import { call } from "../api.js";
import { useStored } from "../route.js";
import { addSamples, deleteClass, deleteDataset, deleteSample, listing as listingOf, renameClass } from "./samples.js";

const FIRST = ["Class 1", "Class 2"]; // what a new project starts with, as Teachable Machine does

export function useClasses(card, dataset) {
  const [listing, setListing] = useState(undefined); // undefined: loading; null: a new project
  const [error, setError] = useState(""); // the project could not be read
  const [need, setNeed] = useState(null); // samples per class before training makes sense (the server says)
  const [layout, setLayout] = useStored(`deepworks.start.classes.${card.name}.${dataset}`, null);
  useEffect(() => { // a project the server does not hold yet is new: not asked for, so no 404 in the console
    call("/api/samples").then((r) => {
      setNeed(r.min_per_class);
      return r.datasets.some((d) => d.dataset === dataset) ? listingOf(dataset).then(setListing) : setListing(null);
    }).catch((e) => setError(e.message));
  }, []);

  const stored = new Map((listing ? listing.classes : []).map((c) => [c.name, c]));
  const names = [...new Set([...(layout ?? (stored.size ? [] : FIRST)), ...stored.keys()])]; // made elsewhere: last
  const classes = names.map((name) => stored.get(name) || { name, count: 0, samples: [], draft: true });
  const ops = {
    async add(name, files) {
      setListing(await addSamples(dataset, card.name, name, files));
      setLayout(names);
    },
    async rename(name, to) {
      if (names.includes(to)) throw new Error(`Another class is called ${to}: choose another name.`);
      if (stored.has(name)) setListing(await renameClass(dataset, name, to));
      setLayout(names.map((n) => (n === name ? to : n)));
    },
    async remove(name) {
      if (stored.has(name)) setListing(await deleteClass(dataset, name));
      setLayout(names.filter((n) => n !== name));
    },
    async removeSample(name, file) { setListing(await deleteSample(dataset, name, file)); },
    addClass() {
      let n = names.length + 1;
      while (names.includes(`Class ${n}`)) n += 1;
      setLayout([...names, `Class ${n}`]);
    },
    async startOver() {
      await deleteDataset(dataset);
      setListing(null);
      setLayout(null);
    },
  };
  return { listing, error, need, classes, ops };
}
