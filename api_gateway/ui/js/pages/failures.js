import { h, replace } from "../dom.js";
export async function failuresPage(root) { replace(root, h("h1", null, "failures")); }
