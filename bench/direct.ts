import type { Target } from './target'

/** The limit: load straight to the upstream, no proxy and no token. */
export const directTarget: Target = {
  name: 'direct',
  description: 'load generator straight to the upstream (the limit; no token)',
  async start(context) {
    return { url: `${context.upstreamUrl}/` }
  },
}
