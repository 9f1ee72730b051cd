import type { ClientConfig } from '../config'
import { startClientLoop } from '../demo/client'
import type { Service } from '../lifecycle'
import type { Logger } from '../log'

/** `bearer-sidecar client`: the demo loop, GET TARGET_URL every INTERVAL seconds through the environment's proxy. */
export async function runClient(config: ClientConfig, logger: Logger): Promise<Service> {
  logger.info(
    `client GET ${config.targetUrl.href} every ${config.intervalMs / 1000}s (proxy: ${process.env.HTTP_PROXY ?? process.env.http_proxy ?? 'none'})`,
  )
  return startClientLoop(config, logger)
}
