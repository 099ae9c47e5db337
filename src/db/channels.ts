// The NOTIFY channel of one sku's stock changes, shared by the consumer (which
// notifies after applying a change to Redis) and the API (whose stockChanged
// subscription listens). Channel names are identifiers of at most 63 bytes;
// a long sku is hashed.
import { createHash } from 'node:crypto';

export function stockChannel(sku: string): string {
  const plain = `stock_changed:${sku}`;
  return Buffer.byteLength(plain) <= 63 ? plain : `stock_changed:#${createHash('sha1').update(sku).digest('hex')}`;
}
