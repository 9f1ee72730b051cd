/**
 * Every relative link in the README, docs/ and bench/ pages resolves: the file or folder exists and,
 * with an anchor, the page it names has a heading whose GitHub slug is that anchor. Pages move and
 * headings get renamed; a reader should never land on a 404 or the top of the wrong page.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const root = resolve(__dirname, '..', '..')
const pages = [
  'README.md',
  'bench/README.md',
  'bench/RESULTS.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
]

/** The markdown without fenced code blocks, which hold neither links nor headings. */
function withoutFences(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
}

/** Link targets: `[text](target)` and `![alt](target)`, with an optional title; none from code. */
function linkTargets(markdown: string): string[] {
  const text = withoutFences(markdown).replace(/`[^`\n]*`/g, '')
  return [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1])
}

/** A heading's anchor as GitHub makes it: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function githubSlug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-')
}

/** Every anchor of a page; a repeated heading gets `-1`, `-2`, ... as on GitHub. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const match of withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = githubSlug(match[1])
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    result.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return result
}

/** The relative links of one page that do not resolve, each with the reason. */
function brokenLinks(page: string, markdown: string): string[] {
  const broken: string[] = []
  for (const target of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto: ...
    const [path, anchor] = target.split('#', 2)
    const samePage = path === ''
    const file = samePage ? join(root, page) : resolve(dirname(join(root, page)), decodeURIComponent(path))
    if (!samePage && !existsSync(file)) {
      broken.push(`${target}: ${relative(root, file)} does not exist`)
      continue
    }
    if (anchor === undefined) continue
    if (!file.endsWith('.md')) {
      broken.push(`${target}: an anchor into a file that is not markdown`)
      continue
    }
    const targetMarkdown = samePage ? markdown : readFileSync(file, 'utf8')
    if (!anchors(targetMarkdown).has(anchor)) broken.push(`${target}: no heading "${anchor}" in ${relative(root, file)}`)
  }
  return broken
}

describe('documentation links', () => {
  test.each(pages)('%s: every relative link and anchor resolves', (page) => {
    const markdown = readFileSync(join(root, page), 'utf8')
    expect(brokenLinks(page, markdown)).toEqual([])
  })

  test('the check finds a missing page, a missing heading and a missing anchor on the same page', () => {
    const markdown =
      '# Title\n\n## Google mode (`CLIENT_MODE=google`)\n\n[a](nowhere.md) [b](egress.md#no-such-heading) [c](#absent) [d](#title)\n'
    expect(brokenLinks('docs/sample.md', markdown)).toEqual([
      'nowhere.md: docs/nowhere.md does not exist',
      'egress.md#no-such-heading: no heading "no-such-heading" in docs/egress.md',
      '#absent: no heading "absent" in docs/sample.md',
    ])
  })

  test.each([
    ['Google mode (`CLIENT_MODE=google`)', 'google-mode-client_modegoogle'],
    ['What the sidecar costs (`npm run bench`)', 'what-the-sidecar-costs-npm-run-bench'],
    ['Kubernetes issuers: which options you need', 'kubernetes-issuers-which-options-you-need'],
    ["3b. auth-server on Cloud Run, verifying the cluster's tokens", '3b-auth-server-on-cloud-run-verifying-the-clusters-tokens'],
  ])('GitHub slug of %j is %j', (heading, slug) => {
    expect(githubSlug(heading)).toBe(slug)
  })

  test('code yields neither links nor headings', () => {
    expect(linkTargets('```sh\n# [x](gone.md)\n```\n')).toEqual([])
    expect(anchors('```sh\n# comment\n```\n# Real\n')).toEqual(new Set(['real']))
    expect(linkTargets('see `[x](inline.md)` and [`egress`](egress.md)')).toEqual(['egress.md'])
  })
})
