import { h, replace } from "../dom.js";
export async function executionPage(root, params) {
  replace(root, h("h1", null, `Execution ${params[0]}`));
}
