import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCertificates {
  /** PEM of the test CA, to trust. */
  ca: string
  /** Server key and certificate for 127.0.0.1 and localhost, signed by the CA. */
  key: string
  cert: string
}

export interface TestCertificateOptions {
  /** Days the server certificate is valid from now; negative gives one that has already expired. Default 2. */
  serverDays?: number
}

/** A throwaway CA and a server certificate signed by it, made with the openssl CLI. */
export function createTestCertificates(options: TestCertificateOptions = {}): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'bearer-tls-'))
  const openssl = (args: string) => execFileSync('openssl', args.split(' '), { cwd: dir, stdio: 'pipe', timeout: 20_000 })
  try {
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    openssl('req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bearer-sidecar-test-CA')
    openssl('req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost')
    openssl(
      `x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days ${options.serverDays ?? 2} -extfile san.ext`,
    )
    const read = (name: string) => readFileSync(join(dir, name), 'utf8')
    return { ca: read('ca.pem'), key: read('server.key'), cert: read('server.pem') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
