/**
 * Client status: NEW, RUNNING, CLOSING, CLOSED; a client may go from CLOSED
 * back to RUNNING by connecting again. The numbers are those of the protocol's
 * metrics (PROTOCOL.md, "Status").
 *
 * @module
 */
export const Status = {
  NEW: 0,
  RUNNING: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const;

/** One of the values of {@link Status}. */
export type Status = (typeof Status)[keyof typeof Status];

/** The name of a status value, e.g. `"RUNNING"`. */
export function statusName(status: Status): keyof typeof Status {
  const names = ["NEW", "RUNNING", "CLOSING", "CLOSED"] as const;
  return names[status];
}
