import { request } from 'undici'
import type { Address } from '../config'
import { type Check, describeError, doctorDefaults, fail, pass } from './check'

/**
 * The running sidecar's own view, when one answers on ADMIN_ADDR (a wildcard listen address is
 * asked on loopback). Nothing listening passes: the doctor also runs where no sidecar does.
 */
export async function checkRunningSidecar(admin: Address): Promise<Check> {
  const host =
    admin.host === '0.0.0.0' ? '127.0.0.1' : admin.host === '::' ? '[::1]' : admin.host.includes(':') ? `[${admin.host}]` : admin.host
  const url = `http://${host}:${admin.port}/readyz`
  const name = 'running sidecar'
  let statusCode: number
  let body: string
  try {
    const response = await request(url, { signal: AbortSignal.timeout(doctorDefaults.timeoutMs) })
    statusCode = response.statusCode
    body = (await response.body.text()).trim()
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'ECONNREFUSED') return pass(name, `none answers at ${url} (connection refused): only the checks above apply`)
    return fail(name, `${url}: ${describeError(error)}`)
  }
  if (statusCode === 200) return pass(name, `${url} answers 200 ${body}; its status page is http://${host}:${admin.port}/`)
  return fail(name, `${url} answers ${statusCode}: ${body}`)
}
