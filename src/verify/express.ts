import type { IncomingMessage, ServerResponse } from 'node:http'
import { SidecarError } from '../errors'
import type { Identity } from './identity'
import { type AuthOptions, authenticate, sendAuthError } from './middleware'
import type { Verifier } from './verifier'

declare global {
  // Declaration merging is how Express lets middleware type what it adds to the request.
  namespace Express {
    interface Request {
      /** Set by `createExpressAuth` before any later handler runs. */
      identity?: Identity
    }
  }
}

/**
 * Express middleware: sets `req.identity` and calls `next()` for a verified, allowed request;
 * answers 401/403/503 itself otherwise, so no later handler runs. Typed on Node's request and
 * response so that this module needs no Express at run time.
 */
export function createExpressAuth(
  verifier: Verifier,
  options: Omit<AuthOptions, 'logger'> = {},
): (req: IncomingMessage & { identity?: Identity }, res: ServerResponse, next: (error?: unknown) => void) => void {
  const realm = options.realm ?? verifier.audience
  return (req, res, next) => {
    authenticate(verifier, req, options.header).then(
      (identity) => {
        req.identity = identity
        next()
      },
      (error) => {
        if (error instanceof SidecarError) sendAuthError(res, error, realm)
        else next(error)
      },
    )
  }
}
