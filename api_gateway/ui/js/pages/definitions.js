import { h, replace } from "../dom.js";
const stub = (title) => async (root) => { replace(root, h("h1", null, title)); };
export const definitionsPage = stub("Workflow definitions");
export const definitionPage = stub("Workflow definition");
export const taskDefsPage = stub("Task definitions");
export const taskDefPage = stub("Task definition");
export const eventsPage = stub("Event handlers");
export const eventPage = stub("Event handler");
