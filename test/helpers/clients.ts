import { execFile } from 'node:child_process'

export interface ClientAnswer {
  status: number
  body: string
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { env: { PATH: process.env.PATH, ...env }, timeout: 15_000, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stderr }))
        else resolve(stdout)
      },
    )
  })
}

/** curl with the given arguments; the status is read from `-w` after the body. */
export async function curl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ClientAnswer> {
  const out = await run('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args], env)
  const split = out.lastIndexOf('\n')
  return { status: Number(out.slice(split + 1)), body: out.slice(0, split) }
}

/** Python's urllib, which honours http_proxy from the environment like most HTTP clients. */
export async function pythonGet(url: string, env: NodeJS.ProcessEnv = {}): Promise<ClientAnswer> {
  const script = [
    'import sys, urllib.request, urllib.error',
    'try:',
    '    r = urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status); print(r.read().decode())',
    'except urllib.error.HTTPError as e:',
    '    print(e.code); print(e.read().decode())',
  ].join('\n')
  const out = await run('python3', ['-c', script, url], env)
  const [status, ...body] = out.split('\n')
  return { status: Number(status), body: body.join('\n').trim() }
}
