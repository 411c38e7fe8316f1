import { h, replace } from "../dom.js";
export async function queuesPage(root) { replace(root, h("h1", null, "queues")); }
