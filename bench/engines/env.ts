/** The settings every engine reads: PORT to listen on (loopback), UPSTREAM_URL to forward to, TOKEN to add. */
export const engineEnv = {
  port: Number(process.env.PORT),
  upstreamUrl: new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8080'),
  authorization: `Bearer ${process.env.TOKEN ?? 'bench'}`,
}
