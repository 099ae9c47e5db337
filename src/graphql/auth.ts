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

/** Claims from an Authorization header value; no header is the anonymous reader. */
export async function authenticate(header: string | undefined, secret: Uint8Array | undefined): Promise<Claims> {
  if (header === undefined || header === '') return ANONYMOUS;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (!bearer) throw new AuthError('the Authorization header must be "Bearer <token>"', 401);
  if (!secret) throw new AuthError('this server accepts no tokens (JWT_SECRET is not set)', 401);
  let payload;
  try {
    ({ payload } = await jwtVerify(bearer[1]!, secret, { algorithms: ['HS256'] }));
  } catch (error) {
    throw new AuthError(error instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid (signature, algorithm or format)', 401);
  }
  const role = payload.role;
  if (typeof role !== 'string' || !(API_ROLES as readonly string[]).includes(role)) {
    throw new AuthError(`role ${JSON.stringify(role ?? null)} may not use the API; roles: ${API_ROLES.join(', ')}`, 403);
  }
  return { role: role as ApiRole, sub: typeof payload.sub === 'string' ? payload.sub : undefined };
}
