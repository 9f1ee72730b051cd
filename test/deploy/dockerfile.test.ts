import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { builtinModules, createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { defaults, environmentVariables } from '../../src/config'

// There is no Docker engine in CI, so the image is checked by reading its Dockerfile: the stages,
// what reaches the runtime stage, the user, the entrypoint. Then the runtime stage is rehearsed
// without Docker: production dependencies only (`npm ci --omit=dev`) plus the compiled dist/ must
// start the CLI and resolve every module the code requires.

const root = join(__dirname, '..', '..')
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

interface Instruction {
  keyword: string
  args: string
}
interface Stage {
  name: string
  from: string
  instructions: Instruction[]
}

/** Joins continuation lines, drops comments, splits into stages at FROM. */
function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
  const args: Instruction[] = []
  const stages: Stage[] = []
  for (const line of logical) {
    const [, keyword, rest] = /^(\S+)\s*(.*)$/.exec(line)!
    const instruction = { keyword: keyword.toUpperCase(), args: rest }
    if (instruction.keyword === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!
      stages.push({ name: name ?? String(stages.length), from, instructions: [] })
    } else if (stages.length === 0) {
      args.push(instruction)
    } else {
      stages[stages.length - 1].instructions.push(instruction)
    }
  }
  return { args, stages }
}

/** .dockerignore semantics: the last matching pattern wins; `!` re-includes; a match on a directory covers what is inside. */
function dockerIgnored(patterns: string[], path: string): boolean {
  let ignored = false
  for (const raw of patterns) {
    const negated = raw.startsWith('!')
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '')
    const source = pattern
      .split('**')
      .map((part) =>
        part
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]'),
      )
      .join('.*')
    const regex = new RegExp(`^${source}(/.*)?$`)
    if (regex.test(path)) ignored = !negated
  }
  return ignored
}

const dockerfile = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))
const ignorePatterns = readFileSync(join(root, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'))
const stage = (name: string) => {
  const found = dockerfile.stages.find((s) => s.name === name)
  if (!found) throw new Error(`Dockerfile has no stage "${name}"`)
  return found
}
const runtime = dockerfile.stages[dockerfile.stages.length - 1]
const of = (s: Stage, keyword: string) => s.instructions.filter((i) => i.keyword === keyword)

describe('Dockerfile', () => {
  test('every stage is Node 24 LTS slim', () => {
    const arg = dockerfile.args.find((a) => a.keyword === 'ARG' && a.args.startsWith('NODE_IMAGE='))
    expect(arg?.args).toMatch(/^NODE_IMAGE=node:24(\.\d+)*-(bookworm|trixie)-slim(@sha256:[0-9a-f]{64})?$/)
    for (const s of dockerfile.stages) expect(s.from).toBe('$' + '{NODE_IMAGE}')
  })

  test('builds with the full dependency set and installs production dependencies apart', () => {
    const build = of(stage('build'), 'RUN').map((i) => i.args)
    expect(build.some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true)
    expect(build.some((r) => /\bnpm run build\b/.test(r))).toBe(true)
    expect(of(stage('deps'), 'RUN').some((i) => /\bnpm ci\b.*--omit=dev/.test(i.args))).toBe(true)
  })

  test('the runtime stage holds dist/, production node_modules and package.json, nothing else', () => {
    expect(runtime.name).toBe('runtime')
    const copies = of(runtime, 'COPY').map((i) => i.args)
    expect(copies).toEqual(
      expect.arrayContaining(['package.json ./', '--from=deps /app/node_modules ./node_modules', '--from=build /app/dist ./dist']),
    )
    expect(copies).toHaveLength(3)
    // package.json is needed at run time: its "type" tells node how to load dist/*.js.
    expect(packageJson.type).toBe('commonjs')
    expect(of(runtime, 'RUN')).toEqual([])
  })

  test('runs as numeric non-root 65532, so runAsNonRoot can verify it', () => {
    const users = of(runtime, 'USER')
    expect(users.at(-1)?.args).toBe('65532:65532')
    expect(runtime.instructions.at(-1)?.keyword).toBe('ENTRYPOINT')
  })

  test('entrypoint is the CLI, with no CMD to surprise anyone', () => {
    const entrypoints = of(runtime, 'ENTRYPOINT')
    expect(entrypoints).toHaveLength(1)
    // The one V8 flag has its measured cost beside it in the Dockerfile (bench/RESULTS.md, footprint).
    expect(JSON.parse(entrypoints[0].args)).toEqual(['node', '--max-semi-space-size=2', 'dist/cli.js'])
    expect(of(runtime, 'CMD')).toEqual([])
    // The same file the package's bin names, compiled from src/cli.ts into dist/.
    expect(packageJson.bin['bearer-sidecar']).toBe('dist/cli.js')
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')).compilerOptions
    expect([build.rootDir, build.outDir]).toEqual(['src', 'dist'])
    expect(existsSync(join(root, 'src', 'cli.ts'))).toBe(true)
  })

  test('exposes the default ports of egress, admin and auth-server', () => {
    const ports = of(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number))
    const port = (address: string) => Number(address.split(':').pop())
    expect(ports.sort()).toEqual([port(defaults.listenAddr), port(defaults.adminAddr), Number(defaults.port)].sort())
  })

  test('every COPY from the build context exists and passes .dockerignore; secrets and build output stay out', () => {
    for (const s of dockerfile.stages) {
      for (const copy of of(s, 'COPY')) {
        if (copy.args.startsWith('--from=')) continue
        const sources = copy.args
          .split(/\s+/)
          .filter((w) => !w.startsWith('--'))
          .slice(0, -1)
        for (const source of sources) {
          const path = source.replace(/\/$/, '')
          expect({ path, exists: existsSync(join(root, path)) }).toEqual({ path, exists: true })
          expect({ path, ignored: dockerIgnored(ignorePatterns, path) }).toEqual({ path, ignored: false })
        }
      }
    }
    for (const path of [
      'node_modules',
      'node_modules/jose/package.json',
      'dist/cli.js',
      '.git/config',
      'test/deploy',
      'deploy/base',
      '.env',
    ]) {
      expect({ path, ignored: dockerIgnored(ignorePatterns, path) }).toEqual({ path, ignored: true })
    }
    expect(dockerIgnored(ignorePatterns, 'src/egress/run.ts')).toBe(false)
  })
})

/** Bare module specifiers src/ requires at run time: type-only imports are erased by the transpile. */
function runtimeImports(): Map<string, string> {
  const found = new Map<string, string>()
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const { outputText } = ts.transpileModule(readFileSync(path, 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        })
        for (const match of outputText.matchAll(/\brequire\(["']([^"']+)["']\)|\bimport\(["']([^"']+)["']\)/g)) {
          const specifier = match[1] ?? match[2]
          if (!specifier.startsWith('.')) found.set(specifier, relative(root, path))
        }
      }
    }
  }
  walk(join(root, 'src'))
  return found
}

function packageName(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

describe('the runtime stage has what the code needs', () => {
  test('src/ requires only Node built-ins and production dependencies', () => {
    const imports = runtimeImports()
    expect(imports.size).toBeGreaterThan(0)
    for (const [specifier, file] of imports) {
      const builtin = specifier.startsWith('node:') || builtinModules.includes(specifier)
      const dependency = packageName(specifier) in (packageJson.dependencies ?? {})
      expect({ specifier, file, shipped: builtin || dependency }).toEqual({ specifier, file, shipped: true })
    }
  })

  // The runtime stage rehearsed: `npm ci --omit=dev` into a fresh directory (from the npm cache
  // the project's own `npm ci` filled), dist/ compiled from src/, then the CLI started from there.
  describe('rehearsal: production node_modules + dist/', () => {
    let app: string
    beforeAll(() => {
      app = mkdtempSync(join(tmpdir(), 'bearer-runtime-'))
      cpSync(join(root, 'package.json'), join(app, 'package.json'))
      cpSync(join(root, 'package-lock.json'), join(app, 'package-lock.json'))
      execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], {
        cwd: app,
        timeout: 120_000,
        stdio: 'pipe',
      })
      // Type errors are `npm run typecheck`'s to report; tsc emits regardless, and the emitted JS is what ships.
      const tsc = spawnSync(
        process.execPath,
        [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(app, 'dist')],
        {
          timeout: 120_000,
          encoding: 'utf8',
        },
      )
      if (!existsSync(join(app, 'dist', 'cli.js'))) throw new Error(`tsc produced no dist/cli.js:\n${tsc.stdout}${tsc.stderr}`)
    }, 240_000)
    afterAll(() => rmSync(app, { recursive: true, force: true }))

    test('no devDependency is installed', () => {
      for (const name of Object.keys(packageJson.devDependencies ?? {})) {
        expect({ name, installed: existsSync(join(app, 'node_modules', name)) }).toEqual({ name, installed: false })
      }
    })

    test('every module src/ requires resolves from there', () => {
      const requireFromApp = createRequire(join(app, 'dist', 'cli.js'))
      for (const [specifier, file] of runtimeImports()) {
        if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue
        expect({
          specifier,
          file,
          resolves: (() => {
            try {
              requireFromApp.resolve(specifier)
              return true
            } catch {
              return false
            }
          })(),
        }).toEqual({ specifier, file, resolves: true })
      }
    })

    test.each(['', ...Object.keys(environmentVariables), 'demo'])('`node dist/cli.js %s --help` runs and exits 0', (command) => {
      const args = command ? [command, '--help'] : ['--help']
      const output = execFileSync(process.execPath, ['dist/cli.js', ...args], {
        cwd: app,
        encoding: 'utf8',
        timeout: 30_000,
        env: { PATH: process.env.PATH },
      })
      expect(output).toContain('Usage: bearer-sidecar')
    })
  })
})
