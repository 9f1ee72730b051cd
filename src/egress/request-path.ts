import { BadRequestError } from '../errors'

/** Percent-decodings looked through; a path still changing after them is refused, not decoded on. */
const maxDecodings = 3

/**
 * Refuses (400) a request path that a server could resolve above where it starts, so that a
 * configured base path (`TARGET_URL=http://h/tenant-a`, a route's upstream path, `UPSTREAM_URL`'s
 * path) is a boundary: `base + path` can never name anything outside `base`.
 *
 * The rule: a path is refused when any of its segments is `.` or `..` in any reading a common
 * server applies. Segments are split at `/` and at `\` (WHATWG URL parsers, so Node apps, IIS and
 * Windows file servers take it for `/`), after percent-decoding until nothing changes (`%2e`,
 * `%2E`, `%2f`, `%5c`, `%252e`: servers that decode before normalising, or twice; a path that
 * still changes after three decodings is refused outright), and each segment is
 * read up to a `;` (Tomcat and Spring drop path parameters, so `..;x` is `..`), `?`, `#` or NUL.
 * The query (from the first raw `?`) is not part of the path and is never looked at.
 *
 * Refused rather than resolved: resolving would send a path the client did not write, and the
 * readings above disagree on what it resolves to; well-behaved clients (curl, browsers, fetch,
 * Python requests) resolve dot segments before sending, so a path that still holds one is a
 * mistake or an attack, and the 400 says which. Encoded slashes alone pass unchanged (APIs such as
 * GitLab's put them in names): they cannot climb without a dot segment, which is refused in every
 * reading. A fragment is refused too: no client sends one, and servers cut the path there.
 */
export function checkRequestPath(pathAndQuery: string): void {
  const query = pathAndQuery.indexOf('?')
  const path = query < 0 ? pathAndQuery : pathAndQuery.slice(0, query)
  // Most paths hold none of these, and then nothing below can match: one scan, no allocation.
  if (!mayHideDotSegment.test(path)) return
  if (path.includes('#')) throw new BadRequestError('request path must not carry a fragment')
  let decoded = path
  for (let decodings = 0; decoded.includes('%'); decodings++) {
    const next = percentDecoded(decoded)
    if (next === decoded) break
    // `%252525…` would otherwise cost one pass over the path per two characters of it.
    if (decodings === maxDecodings) throw new BadRequestError('request path must not be percent-encoded more than three times over')
    decoded = next
  }
  if (dotSegment.test(decoded)) {
    throw new BadRequestError('request path must not contain "." or ".." segments (in any spelling): send the resolved path')
  }
}

/** A character without which a path can hold neither a dot segment in any spelling nor a fragment. */
const mayHideDotSegment = /[.%#]/

/** `.` or `..` between separators (`/`, `\`), the second one possibly a segment's end (`;`, `?`, `#`, NUL) or the path's. */
const dotSegment = /(?:^|[/\\])\.\.?(?:[/\\;?#\0]|$)/

/** Every `%XX` replaced by its byte (as a Latin-1 character: only ASCII matters here); a stray `%` stays. */
function percentDecoded(value: string): string {
  return value.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
}
