import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { environmentVariables } from '../../src/config'
import { injectionLabel, podAnnotations } from '../../src/injector/names'

// docs/injector.md is the reference users read: every annotation the injector reads and every
// variable the command reads is in its tables.
const page = readFileSync(join(__dirname, '..', '..', 'docs', 'injector.md'), 'utf8')

test.each(Object.values(podAnnotations))('documents the annotation %s', (annotation) => {
  expect(page).toContain(`| \`${annotation}\` |`)
})

test.each(environmentVariables.injector)('documents the variable %s', (variable) => {
  // The rows come from the config table under `<!-- variables: injector -->` (test/config/docs.test.ts holds them to it).
  expect(page).toContain('<!-- variables: injector -->')
  expect(page).toContain(`| \`${variable}\` |`)
})

test('shows the opt-in label', () => {
  expect(page).toContain(`${injectionLabel}: "true"`)
})

test('each adoption path at the top fits in under 20 lines', () => {
  const top = page.split('## What an opted-in pod gets')[0]!
  const [withInjector, withoutWebhook] = top.split('**Without the webhook**')
  const lines = (text: string) => text.split('\n').filter((line) => line.trim() && !line.startsWith('```')).length
  expect(lines(withInjector!.split('**With the injector**')[1]!)).toBeLessThan(20)
  expect(lines(withoutWebhook!.split('Either way')[0]!)).toBeLessThan(20)
})
