// Conductor's statuses, their display order and what each allows.

export const WORKFLOW_STATUSES = ["RUNNING", "PAUSED", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"];
export const WORKFLOW_TERMINAL = new Set(["COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"]);

export const TASK_STATUSES = [
  "SCHEDULED", "IN_PROGRESS", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED",
  "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED", "SKIPPED",
];
export const TASK_TERMINAL = new Set([
  "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT",
  "CANCELED", "SKIPPED",
]);

/** The diagram's legend: status -> label (the colours are in app.css, .st-<STATUS>). */
export const LEGEND = [
  ["COMPLETED", "Completed"],
  ["IN_PROGRESS", "In progress"],
  ["SCHEDULED", "Scheduled"],
  ["FAILED", "Failed / timed out"],
  ["CANCELED", "Canceled"],
  ["SKIPPED", "Skipped"],
  ["COMPLETED_WITH_ERRORS", "Completed with errors"],
  ["NONE", "Not run"],
];
