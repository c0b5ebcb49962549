/**
 * Random (version 4) UUIDs for sync request correlation, from
 * `crypto.getRandomValues`, which browsers offer on plain-HTTP pages too
 * (`crypto.randomUUID` needs a secure context). RFC 9562 section 5.4.
 *
 * @module
 */

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const POOL_SIZE = 16 * 256;
let pool = new Uint8Array(0);
let offset = POOL_SIZE;

/** A fresh UUID v4 as 36-char lowercase text, e.g. `0e03ae60-2eee-4b75-9c5b-ee52b321913a`. */
export function uuidv4(): string {
  if (offset + 16 > pool.length) {
    pool = new Uint8Array(POOL_SIZE);
    globalThis.crypto.getRandomValues(pool);
    offset = 0;
  }
  const b = pool.subarray(offset, offset + 16);
  offset += 16;
  const b6 = ((b[6] as number) & 0x0f) | 0x40;
  const b8 = ((b[8] as number) & 0x3f) | 0x80;
  const h = (i: number): string => HEX[b[i] as number] as string;
  return (
    h(0) + h(1) + h(2) + h(3) + "-" + h(4) + h(5) + "-" + (HEX[b6] as string) + h(7) + "-" +
    (HEX[b8] as string) + h(9) + "-" + h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  );
}
