// aedes broker for mqttc's interoperability tests.
//
//   node broker.js TCPPORT WSPORT
//
// Listens on 127.0.0.1 only: plain MQTT on TCPPORT, MQTT over WebSocket
// (the `ws` package, `mqtt` subprotocol, any path) on WSPORT. Prints
// "ready TCPPORT WSPORT" on stdout once both listen, and exits when its
// stdin closes, so a test that dies never leaves it behind.
import net from 'node:net'
import http from 'node:http'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const HOST = '127.0.0.1'

function die (msg) {
  process.stderr.write(`broker.js: ${msg}\n`)
  process.exit(2)
}

function parsePort (s) {
  const n = Number(s)
  if (!Number.isInteger(n) || n < 1 || n > 65535) die(`bad port: ${s}`)
  return n
}

if (process.argv.length < 4) die('usage: node broker.js TCPPORT WSPORT')
const tcpPort = parsePort(process.argv[2])
const wsPort = parsePort(process.argv[3])

// Exit when the test closes our stdin (or dies).
process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()

const aedes = await Aedes.createBroker()
if (process.env.AEDES_DEBUG) {
  aedes.on('client', (c) => process.stderr.write(`client ${c.id}\n`))
  aedes.on('clientError', (c, err) => process.stderr.write(`clientError ${c && c.id}: ${err.message}\n`))
  aedes.on('connectionError', (c, err) => process.stderr.write(`connectionError: ${err.message}\n`))
}

function listen (server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, HOST, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

const tcp = net.createServer(aedes.handle)

const httpServer = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' })
  res.end('WebSocket only\n')
})
const wss = new WebSocketServer({
  server: httpServer,
  handleProtocols: (protocols) => {
    if (protocols.has('mqtt')) return 'mqtt'
    if (protocols.has('mqttv3.1')) return 'mqttv3.1'
    return false
  }
})
wss.on('connection', (websocket, req) => {
  const stream = createWebSocketStream(websocket)
  stream.on('error', () => stream.destroy())
  aedes.handle(stream, req)
})

try {
  await listen(tcp, tcpPort)
  await listen(httpServer, wsPort)
} catch (err) {
  die(`listen failed: ${err.message}`)
}
process.stdout.write(`ready ${tcpPort} ${wsPort}\n`)
