#!/usr/bin/env node
// kafkajs as a test client of skiff's Kafka listener.
//
// Usage: kafkajs_client.js --bootstrap HOST:PORT --topic T [--count N]
//        [--partition P] [--group G] [--timeout-s S]
//        [--sasl MECHANISM:USER:PASSWORD] [--ca FILE] produce|consume
//
// --sasl signs in (MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512);
// --ca speaks TLS, trusting the PEM certificate(s) in FILE.
//
// Each mode prints one JSON object per line on stdout (parsed by
// tests/kafka_clients.rs) and exits non-zero with the reason on stderr.
//   produce  N records keyed key-I, valued value-I, header h=hv-I (acks=-1)
//   consume  N records from the beginning in a fresh consumer group
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

function parseArgs(argv) {
  const args = { count: 10, group: 'kafkajs-test', timeoutS: 20, partition: undefined };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--bootstrap': args.bootstrap = value(); break;
      case '--topic': args.topic = value(); break;
      case '--group': args.group = value(); break;
      case '--count': args.count = Number.parseInt(value(), 10); break;
      case '--partition': args.partition = Number.parseInt(value(), 10); break;
      case '--timeout-s': args.timeoutS = Number.parseFloat(value()); break;
      case '--sasl': args.sasl = value(); break;
      case '--ca': args.ca = value(); break;
      default:
        if (flag.startsWith('--')) throw new Error(`unknown flag ${flag}`);
        rest.push(flag);
    }
  }
  if (!args.bootstrap || !args.topic || rest.length !== 1) {
    throw new Error('usage: kafkajs_client.js --bootstrap HOST:PORT --topic T [--count N] produce|consume');
  }
  args.mode = rest[0];
  return args;
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const text = (b) => (b === null || b === undefined ? null : b.toString('utf8'));

async function produce(kafka, args) {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < args.count; i++) {
    const m = { key: `key-${i}`, value: `value-${i}`, headers: { h: `hv-${i}` } };
    if (args.partition !== undefined) m.partition = args.partition;
    messages.push(m);
  }
  // One send per record so each reports its own offset.
  for (let i = 0; i < messages.length; i++) {
    const [meta] = await producer.send({ topic: args.topic, acks: -1, messages: [messages[i]] });
    emit({ event: 'produced', partition: meta.partition, offset: Number(meta.baseOffset),
      key: messages[i].key, value: messages[i].value });
  }
  await producer.disconnect();
  emit({ event: 'done', count: args.count });
}

async function consume(kafka, args) {
  const consumer = kafka.consumer({ groupId: args.group, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: [args.topic], fromBeginning: true });
  let seen = 0;
  await new Promise((resolve, reject) => {
    // A crash kafkajs will not restart from is the end of the run.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) reject(payload.error);
    });
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (seen >= args.count) return;
        const headers = Object.entries(message.headers || {}).map(([k, v]) => [k, text(v)]);
        emit({ event: 'record', partition, offset: Number(message.offset),
          timestamp: Number(message.timestamp), key: text(message.key), value: text(message.value),
          headers });
        seen += 1;
        if (seen >= args.count) resolve();
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  emit({ event: 'done', count: seen });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const timer = setTimeout(() => {
    process.stderr.write(`${args.mode}: not done in ${args.timeoutS} s\n`);
    process.exit(2);
  }, args.timeoutS * 1000);
  const config = { clientId: 'skiff-kafkajs-test', brokers: [args.bootstrap],
    logLevel: logLevel.ERROR, retry: { retries: 3 } };
  if (args.sasl !== undefined) {
    const [mechanism, username, ...password] = args.sasl.split(':');
    if (!mechanism || !username || password.length === 0) {
      throw new Error('--sasl needs MECHANISM:USER:PASSWORD');
    }
    config.sasl = { mechanism: mechanism.toLowerCase(), username, password: password.join(':') };
  }
  if (args.ca !== undefined) config.ssl = { ca: [fs.readFileSync(args.ca, 'utf8')] };
  const kafka = new Kafka(config);
  const modes = { produce, consume };
  if (!modes[args.mode]) throw new Error(`unknown mode ${args.mode}`);
  await modes[args.mode](kafka, args);
  clearTimeout(timer);
}

main().catch((e) => {
  // The Kafka error codes' names (kafkajs' `type`, on the error or the
  // causes a retrier wrapped it around) first, for the tests.
  for (let c = e; c; c = c.cause) {
    if (c.type) process.stderr.write(`error type ${c.type}\n`);
  }
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
