/**
 * `npm run build && npm run build:bench && node dist-bench/bench/grpc.js [seconds] [concurrency]`: gRPC unary
 * calls (grpc-js client, `concurrency` calls in flight, for `seconds`) straight to a grpc-js server and
 * through `bearer-sidecar egress` (h2c in, h2c out, the token added), then h2c HTTP GETs with h2load
 * the same two ways. Prints calls/s, the ratio to direct, and the sidecar's CPU-ms per 1000 calls
 * (from /proc). Self-contained: its own server, token file and sidecar process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createH2Server } from 'node:http2'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'

const seconds = Number(process.argv[2] ?? 5)
const concurrency = Number(process.argv[3] ?? 32)
// Compiled to dist-bench/bench/grpc.js: the repository root is two levels up.
const cli = join(__dirname, '..', '..', 'dist', 'cli.js')
const identity = { serialize: (value: Buffer) => value, deserialize: (value: Buffer) => value }
const service = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity.serialize,
    requestDeserialize: identity.deserialize,
    responseSerialize: identity.serialize,
    responseDeserialize: identity.deserialize,
  },
}
const Client = grpc.makeGenericClientConstructor(service, 'Echo')

async function freePort(): Promise<number> {
  const server = createNetServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  return port
}

/** CPU time (user + system) of a process so far, in ms, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}

async function unaryLoad(target: string): Promise<number> {
  const client = new Client(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    echo(request: Buffer, callback: (error: grpc.ServiceError | null) => void): void
  }
  const payload = Buffer.alloc(64, 1)
  const call = () => new Promise<void>((resolve, reject) => client.echo(payload, (error) => (error ? reject(error) : resolve())))
  await call()
  let calls = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await call()
        calls++
      }
    }),
  )
  client.close()
  return calls
}

function h2load(url: string, extra: string[] = []): Promise<number | undefined> {
  return new Promise((resolve) =>
    execFile('h2load', ['-D', String(seconds), '-c', '8', '-m', '16', ...extra, url], (error, stdout) => {
      if (error) resolve(undefined)
      else resolve(Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? Number.NaN))
    }),
  )
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bearer-bench-grpc-'))
  let sidecar: ChildProcess | undefined
  const server = new grpc.Server()
  server.addService(service, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, call.request),
  })
  const h2c = createH2Server((_req, res) => res.end('ok'))
  try {
    const grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    )
    h2c.listen(0, '127.0.0.1')
    await once(h2c, 'listening')
    const h2cPort = (h2c.address() as AddressInfo).port
    // The file source reads a JWT's claims, it does not verify it: a far-future exp is all it needs.
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
    writeFileSync(join(dir, 'token'), `${part({ alg: 'RS256' })}.${part({ sub: 'bench', aud: 'bench', exp: 4_102_444_800 })}.c2ln`)
    const [port, adminPort] = [await freePort(), await freePort()]
    const routes = join(dir, 'routes.yaml')
    writeFileSync(routes, `routes:\n  - host: h2c.bench:80\n    upstream: http://127.0.0.1:${h2cPort}\n`)
    sidecar = spawn(process.execPath, [cli, 'egress'], {
      env: {
        ...process.env,
        TARGET_URL: `http://127.0.0.1:${grpcPort}`,
        ROUTES_FILE: routes,
        TOKEN_FILE: join(dir, 'token'),
        LISTEN_ADDR: `127.0.0.1:${port}`,
        ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    })
    for (let attempt = 0; attempt < 100; attempt++) {
      const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
      if (ready) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const pid = sidecar.pid as number
    const rows: string[][] = []
    const direct = await unaryLoad(`127.0.0.1:${grpcPort}`)
    const cpuBefore = cpuMs(pid)
    const through = await unaryLoad(`127.0.0.1:${port}`)
    const cpu = cpuMs(pid) - cpuBefore
    rows.push(['gRPC unary, direct', (direct / seconds).toFixed(0), '1.00', '-'])
    rows.push([
      'gRPC unary, through the sidecar',
      (through / seconds).toFixed(0),
      (through / direct).toFixed(2),
      ((cpu / through) * 1000).toFixed(1),
    ])
    const h2Direct = await h2load(`http://127.0.0.1:${h2cPort}/`)
    if (h2Direct !== undefined) {
      const before = cpuMs(pid)
      // `:authority` names the h2c route, as an HTTP/2 client of the sidecar does.
      const h2Through = (await h2load(`http://127.0.0.1:${port}/`, ['-H', ':authority: h2c.bench'])) ?? Number.NaN
      const h2Cpu = cpuMs(pid) - before
      rows.push(['h2c GET (h2load), direct', h2Direct.toFixed(0), '1.00', '-'])
      rows.push([
        'h2c GET (h2load), through the sidecar',
        h2Through.toFixed(0),
        (h2Through / h2Direct).toFixed(2),
        ((h2Cpu / (h2Through * seconds)) * 1000).toFixed(1),
      ])
    }
    console.log(`bearer-sidecar gRPC/h2c: ${seconds} s per run, grpc-js ${concurrency} calls in flight, h2load -c 8 -m 16`)
    console.log(`machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; Node ${process.version}`)
    const header = ['target', 'calls/s', 'x direct', 'sidecar CPU-ms/1k']
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)))
    for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  '))
  } finally {
    sidecar?.kill('SIGTERM')
    server.forceShutdown()
    h2c.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
