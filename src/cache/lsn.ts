// Log sequence numbers as bigints. Postgres prints them as "16/B374D848";
// pg-logical-replication pads them inside messages ("00000016/B374D848"), so
// compare numerically, never as text.
export type Lsn = bigint;

export function parseLsn(text: string): Lsn {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** A Redis stream entry id derived from a transaction's commit LSN and an index within it. */
export function streamId(lsn: Lsn, index: number): string {
  return `${lsn}-${index}`;
}
