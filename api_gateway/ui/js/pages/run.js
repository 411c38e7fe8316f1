import { h, replace } from "../dom.js";
export async function runPage(root) { replace(root, h("h1", null, "run")); }
