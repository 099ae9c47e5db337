// Who is asking: a JWT (HS256, JWT_SECRET) whose `role` claim, from an
// allow-list, becomes the Postgres role of the request; no token at all reads
// as stockroom_reader. Expired, forged and unsigned (alg: none) tokens, and
// roles outside the list, are refused before any SQL runs.
import { errors as joseErrors, jwtVerify } from 'jose';

export const API_ROLES = ['stockroom_reader', 'stockroom_writer', 'stockroom_admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

export interface Claims { role: ApiRole; sub: string | undefined }

export const ANONYMOUS: Claims = { role: 'stockroom_reader', sub: undefined };

export class AuthError extends Error {
  readonly statusCode: 401 | 403;
  readonly code: 'UNAUTHENTICATED' | 'FORBIDDEN';
  constructor(message: string, statusCode: 401 | 403) {
    super(message);
    this.statusCode = statusCode;
    this.code = statusCode === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
  }
}

/**
 * Tokens already verified, until they expire: a client sends the same token
 * with every request, and checking its HMAC each time (web crypto, async) costs
 * more than the rest of a small request's auth. Only accepted tokens are kept,
 * under the secret they were checked with; bounded, emptied when full.
 */
const verified = new Map<string, { claims: Claims; expiresAtMs: number; secret: Uint8Array }>();
const MAX_VERIFIED = 10_000;

/** Claims from an Authorization header value; no header is the anonymous reader. */
export async function authenticate(header: string | undefined, secret: Uint8Array | undefined): Promise<Claims> {
  if (header === undefined || header === '') return ANONYMOUS;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (!bearer) throw new AuthError('the Authorization header must be "Bearer <token>"', 401);
  if (!secret) throw new AuthError('this server accepts no tokens (JWT_SECRET is not set)', 401);
  const token = bearer[1]!;
  const known = verified.get(token);
  if (known && known.secret === secret && Date.now() < known.expiresAtMs) return known.claims;
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secret, { algorithms: ['HS256'] }));
  } catch (error) {
    verified.delete(token);
    throw new AuthError(error instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid (signature, algorithm or format)', 401);
  }
  const role = payload.role;
  if (typeof role !== 'string' || !(API_ROLES as readonly string[]).includes(role)) {
    throw new AuthError(`role ${JSON.stringify(role ?? null)} may not use the API; roles: ${API_ROLES.join(', ')}`, 403);
  }
  const claims: Claims = { role: role as ApiRole, sub: typeof payload.sub === 'string' ? payload.sub : undefined };
  // A token without exp is kept for a minute at a time: nbf/iat rules are re-checked then.
  const expiresAtMs = Math.min(typeof payload.exp === 'number' ? payload.exp * 1000 : Infinity, Date.now() + 60_000);
  if (verified.size >= MAX_VERIFIED) verified.clear();
  verified.set(token, { claims, expiresAtMs, secret });
  return claims;
}
