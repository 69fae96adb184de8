// The designed model as a graph (React Flow): the same cards top to bottom, a residual block's cards beside its skip
// connection, joined by an addition. Read-only: the stack above is where the design is edited. Light or dark as the
// system is (colorMode), so its nodes' text keeps its contrast in both.
import { ReactFlow, Background, Controls } from "@xyflow/react";
import "@xyflow/react/dist/style.css";

const STEP = 70;

function label(card) {
  const settings = Object.entries(card).filter(([k]) => k !== "type" && k !== "layers").map(([k, v]) => `${k} ${v}`);
  return `${card.type}${settings.length ? ": " + settings.join(", ") : ""}`;
}

export function graphOf(layers, plan, input) {
  const nodes = [], edges = [];
  let y = 0, prev = "input";
  const add = (id, text, x = 0, kind = "default") => {
    nodes.push({ id, position: { x, y }, data: { label: text }, type: kind, className: `graph-${id.split("-")[0]}` });
    y += STEP;
  };
  const link = (a, b, extra = {}) => edges.push({ id: `${a}->${b}`, source: a, target: b, ...extra });
  add("input", `input ${input ? input.join("×") : ""}`, 0, "input");
  layers.forEach((card, i) => {
    const shape = plan && plan[i] ? ` → ${plan[i].output.join("×")}` : "";
    if (card.type === "residual") {
      const start = prev;
      (card.layers || []).forEach((inner, j) => {
        const id = `inner-${i}-${j}`;
        add(id, label(inner), 40);
        link(prev, id);
        prev = id;
      });
      const join = `add-${i}`;
      add(join, `add (residual ${i + 1})${shape}`);
      link(prev, join);
      link(start, join, { type: "smoothstep", style: { strokeDasharray: "4 3" }, label: "skip" });
      prev = join;
    } else {
      const id = `card-${i}`;
      add(id, `${i + 1}. ${label(card)}${shape}`);
      link(prev, id);
      prev = id;
    }
  });
  const head = plan && plan[plan.length - 1];
  add("head", `head: dense${head ? ` → ${head.output.join("×")}` : ""}`, 0, "output");
  link(prev, "head");
  return { nodes, edges };
}

export default function GraphView({ layers, plan, input }) {
  const { nodes, edges } = graphOf(layers, plan, input);
  return (
    <div className="graph" data-testid="graph" data-nodes={nodes.length} style={{ height: Math.min(700, nodes.length * STEP + 60) }}>
      <ReactFlow nodes={nodes} edges={edges} fitView nodesDraggable={false} nodesConnectable={false} colorMode="system"
                 proOptions={{ hideAttribution: true }}>
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
