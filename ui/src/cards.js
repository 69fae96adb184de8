// What the page asks of a task: its card (GET /api/info's task_cards, made by cards.py), never its name.

// The card of `task`; a task the server has no card for (one of your own) declares nothing.
export function cardOf(info, task) {
  const card = (info.task_cards || {})[task];
  return card || { name: task, models: [], builtins: [], templates: [], form: [], verbs: [], inputs: [], outputs: [],
                   trust: false, automl: false, data: "" };
}

// Whether the designer builds this task's models on images: it trains designed models ('layers') of image inputs.
export function designsImages(card) {
  return card.models.includes("layers") && card.inputs[0] === "image";
}

// The tasks whose runs the trust tools take.
export function trustedTasks(info) {
  return Object.values(info.task_cards || {}).filter((card) => card.trust).map((card) => card.name);
}

// What the pages start with: the first task, its first built-in data set and its default model.
export function firstChoice(info) {
  const card = cardOf(info, info.tasks[0]);
  return { task: card.name, data: card.builtins[0] || "", preview: null, model: card.templates[0]?.model || null,
           layers: null, image_size: null };
}
