// Drives the chattest emulator end to end with the official client,
// @botpress/chat 0.5.5. Run by TestOfficialClient (official_test.go), which
// starts two emulators with the demo bot and passes their URLs:
//   CHATTEST_SHARED_URL     shared mode (createUser allowed)
//   CHATTEST_MANUAL_URL     manual mode, keys signed with CHATTEST_ENCRYPTION_KEY
// Prints one line per check and exits 1 if any failed.
import { Client } from '@botpress/chat'

const sharedUrl = process.env.CHATTEST_SHARED_URL
const manualUrl = process.env.CHATTEST_MANUAL_URL
const encryptionKey = process.env.CHATTEST_ENCRYPTION_KEY
const TIMEOUT = 10_000

let failures = 0
const check = async (name, fn) => {
  try {
    await fn()
    console.log(`ok - ${name}`)
  } catch (err) {
    failures++
    console.log(`not ok - ${name}: ${err?.stack ?? err}`)
  }
}
const assert = (cond, msg) => {
  if (!cond) throw new Error(msg)
}

// expectSignal resolves with the data of the first signal of that type that
// passes pred, and rejects after TIMEOUT.
const expectSignal = (listener, type, pred = () => true) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} signal within ${TIMEOUT} ms`)), TIMEOUT)
    const handler = (data) => {
      if (!pred(data)) return
      clearTimeout(timer)
      listener.off?.(type, handler)
      resolve(data)
    }
    listener.on(type, handler)
  })

// expectError resolves with the error a call throws, and fails if it does not.
const expectError = async (promise) => {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('call succeeded, want an error')
}

const apiError = (err, type, code) => {
  assert(err.isApiError, `not an API error: ${err}`)
  assert(err.type === type, `error type ${err.type}, want ${type}`)
  assert(err.code === code, `error code ${err.code}, want ${code}`)
}

const suffix = Math.random().toString(36).slice(2, 8)

async function sharedMode() {
  let alice, bob, conv, aliceListener, bobListener, userMessage, botMessage

  await check('shared: connect creates users (createUser, chosen and generated ids)', async () => {
    alice = await Client.connect({ apiUrl: sharedUrl })
    bob = await Client.connect({ apiUrl: sharedUrl, userId: `bob-${suffix}` })
    assert(alice.user.id && alice.user.key, 'alice has no id or key')
    assert(bob.user.id === `bob-${suffix}`, `bob id ${bob.user.id}`)
  })

  await check('shared: getUser, updateUser', async () => {
    const { user } = await alice.updateUser({ name: 'Alice', profile: 'tester' })
    assert(user.name === 'Alice' && user.profile === 'tester', JSON.stringify(user))
    const got = await alice.getUser({})
    assert(got.user.name === 'Alice', JSON.stringify(got))
  })

  await check('shared: createConversation, getConversation, getOrCreateConversation', async () => {
    ;({ conversation: conv } = await alice.createConversation({}))
    const { conversation } = await alice.getConversation({ id: conv.id })
    assert(conversation.id === conv.id, 'getConversation id')
    const a = await alice.getOrCreateConversation({ id: `room-${suffix}` })
    const b = await alice.getOrCreateConversation({ id: `room-${suffix}` })
    assert(a.conversation.id === b.conversation.id && a.conversation.createdAt === b.conversation.createdAt, 'getOrCreate twice')
  })

  await check('shared: listenConversation, addParticipant emits participant_added', async () => {
    aliceListener = await alice.listenConversation({ id: conv.id })
    const added = expectSignal(aliceListener, 'participant_added')
    const { participant } = await alice.addParticipant({ conversationId: conv.id, userId: bob.user.id })
    assert(participant.id === bob.user.id, 'participant id')
    const data = await added
    assert(data.participantId === bob.user.id && data.conversationId === conv.id, JSON.stringify(data))
    bobListener = await bob.listenConversation({ id: conv.id })
  })

  await check('shared: createMessage, the user message and the bot reply arrive on the listeners', async () => {
    const mine = expectSignal(aliceListener, 'message_created', (m) => !m.isBot)
    const reply = expectSignal(aliceListener, 'message_created', (m) => m.isBot)
    const bobSees = expectSignal(bobListener, 'message_created', (m) => m.isBot)
    ;({ message: userMessage } = await alice.createMessage({
      conversationId: conv.id,
      payload: { type: 'text', text: 'hello bot' },
      metadata: { source: 'official-client' },
    }))
    const m = await mine
    assert(m.id === userMessage.id && m.metadata?.source === 'official-client', JSON.stringify(m))
    botMessage = await reply
    assert(botMessage.payload.type === 'text' && botMessage.payload.text === 'hello bot', JSON.stringify(botMessage))
    assert(botMessage.userId !== alice.user.id, 'bot reply from alice')
    await bobSees
  })

  await check('shared: the demo bot answers keywords with rich payloads', async () => {
    for (const word of ['card', 'carousel', 'choice', 'dropdown', 'bloc', 'location', 'image', 'file', 'markdown']) {
      const reply = expectSignal(aliceListener, 'message_created', (m) => m.isBot && m.payload.type === word)
      await alice.createMessage({ conversationId: conv.id, payload: { type: 'text', text: word } })
      await reply
    }
  })

  await check('shared: streamed replies reach 0.5.5 as unknown signals, then message_created', async () => {
    const unknowns = []
    const onUnknown = (d) => unknowns.push(d)
    aliceListener.on('unknown', onUnknown)
    const final = expectSignal(aliceListener, 'message_created', (m) => m.isBot && m.payload.text?.includes('streamed'))
    await alice.createMessage({ conversationId: conv.id, payload: { type: 'text', text: 'stream' } })
    await final
    aliceListener.off?.('unknown', onUnknown)
    const types = unknowns.map((d) => {
      try {
        return JSON.parse(d).type
      } catch {
        return d // the keepalive "ping"
      }
    })
    assert(types.includes('message_stream_delta') && types.includes('message_stream_complete'), `unknown signals: ${types}`)
  })

  await check('shared: list.messages collects every message, bot replies included', async () => {
    const messages = await alice.list.messages({ conversationId: conv.id }).collect()
    assert(messages.some((m) => m.id === userMessage.id), 'user message missing')
    assert(messages.some((m) => m.id === botMessage.id), 'bot message missing')
    // 11 user messages and 11 replies: two pages of 20, so the iterator followed nextToken.
    assert(messages.length === 22, `${messages.length} messages, want 22`)
    assert(new Set(messages.map((m) => m.id)).size === 22, "duplicates across pages")
  })

  await check('shared: listParticipants, getParticipant (owner only)', async () => {
    const participants = await bob.list.participants({ conversationId: conv.id }).collect()
    const ids = participants.map((p) => p.id).sort()
    assert(JSON.stringify(ids) === JSON.stringify([alice.user.id, bob.user.id].sort()), `participants ${ids}`)
    const { participant } = await alice.getParticipant({ conversationId: conv.id, userId: bob.user.id })
    assert(participant.id === bob.user.id, 'getParticipant')
    apiError(await expectError(bob.getParticipant({ conversationId: conv.id, userId: alice.user.id })), 'Forbidden', 403)
  })

  await check('shared: getMessage, deleteMessage emits message_deleted, then 404', async () => {
    const { message } = await alice.getMessage({ id: userMessage.id })
    assert(message.id === userMessage.id, 'getMessage')
    apiError(await expectError(bob.deleteMessage({ id: userMessage.id })), 'Forbidden', 403)
    const deleted = expectSignal(aliceListener, 'message_deleted')
    await alice.deleteMessage({ id: userMessage.id })
    const data = await deleted
    assert(data.id === userMessage.id, JSON.stringify(data))
    apiError(await expectError(alice.getMessage({ id: userMessage.id })), 'ResourceNotFound', 404)
  })

  await check('shared: createEvent emits event_created, getEvent', async () => {
    const seen = expectSignal(aliceListener, 'event_created')
    const { event } = await alice.createEvent({ conversationId: conv.id, payload: { kind: 'ping' } })
    const data = await seen
    assert(data.id === event.id && data.isBot === false && data.payload.kind === 'ping', JSON.stringify(data))
    const got = await bob.getEvent({ id: event.id })
    assert(got.event.id === event.id, 'getEvent')
  })

  await check('shared: errors are classified by type', async () => {
    apiError(await expectError(alice.getConversation({ id: `nope-${suffix}` })), 'ResourceNotFound', 404)
    apiError(await expectError(alice.createConversation({ id: `room-${suffix}` })), 'AlreadyExists', 409)
    apiError(await expectError(bob.getOrCreateConversation({ id: `room-${suffix}` })), 'Forbidden', 403)
    apiError(await expectError(new Client({ apiUrl: sharedUrl }).createUser({ id: 'not valid!' })), 'InvalidPayload', 400)
    apiError(await expectError(alice.removeParticipant({ conversationId: conv.id, userId: alice.user.id })), 'InvalidPayload', 400)
    // Validation errors are {message} bodies the client cannot classify (spec §11).
    const v = await expectError(alice.createMessage({ conversationId: conv.id, payload: { type: 'text', text: '' } }))
    assert(v.type === 'Unknown' && v.code === 500, `validation error ${v.type} ${v.code}`)
    const k = await expectError(new Client({ apiUrl: sharedUrl }).getUser({ 'x-user-key': 'garbage' }))
    apiError(k, 'Unauthorized', 401)
  })

  await check('shared: removeParticipant closes the removed user stream, then participant_removed', async () => {
    const closed = expectSignal(bobListener, 'error')
    const removed = expectSignal(aliceListener, 'participant_removed')
    await alice.removeParticipant({ conversationId: conv.id, userId: bob.user.id })
    await closed
    const data = await removed
    assert(data.participantId === bob.user.id, JSON.stringify(data))
    assert(bobListener.status === 'disconnected', `bob listener ${bobListener.status}`)
  })

  await check('shared: listConversations, deleteConversation, deleteUser', async () => {
    const convs = await alice.list.conversations({}).collect()
    assert(convs.some((c) => c.id === conv.id), 'conversation not listed')
    await aliceListener.disconnect()
    await alice.deleteConversation({ id: conv.id })
    apiError(await expectError(alice.getConversation({ id: conv.id })), 'ResourceNotFound', 404)
    await bob.deleteUser({})
    apiError(await expectError(bob.getUser({})), 'ResourceNotFound', 404)
  })
}

async function manualMode() {
  let carol, conv, listener

  await check('manual: createUser is refused with 401', async () => {
    apiError(await expectError(new Client({ apiUrl: manualUrl }).createUser({})), 'Unauthorized', 401)
  })

  await check('manual: connect with encryptionKey (getOrCreateUser with a signed key)', async () => {
    carol = await Client.connect({ apiUrl: manualUrl, encryptionKey, userId: `carol-${suffix}` })
    assert(carol.user.id === `carol-${suffix}`, `user id ${carol.user.id}`)
    const again = await Client.connect({ apiUrl: manualUrl, encryptionKey, userId: `carol-${suffix}` })
    assert(again.user.createdAt === carol.user.createdAt, 'second connect created another user')
    apiError(await expectError(Client.connect({ apiUrl: manualUrl, encryptionKey: 'wrong', userId: 'x' })), 'Unauthorized', 401)
  })

  await check('manual: conversation, message and bot reply', async () => {
    ;({ conversation: conv } = await carol.createConversation({ id: `manual-${suffix}` }))
    listener = await carol.listenConversation({ id: conv.id })
    const reply = expectSignal(listener, 'message_created', (m) => m.isBot)
    await carol.createMessage({ conversationId: conv.id, payload: { type: 'text', text: 'choice' } })
    const m = await reply
    assert(m.payload.type === 'choice' && m.payload.options.length > 0, JSON.stringify(m))
    await listener.disconnect()
  })
}

await sharedMode()
await manualMode()
console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`)
process.exit(failures === 0 ? 0 : 1)
