import { Agent } from 'undici'
import { UndiciAgent } from '../../src/proxy/forward'

// The forwarder loads undici's Agent by its file, not undici's index (start-up memory): an undici
// upgrade that moves or replaces that file must fail here, not in a pod.
test("the forwarder's Agent is undici's exported Agent", () => {
  expect(UndiciAgent).toBe(Agent)
})
