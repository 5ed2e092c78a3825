// A caller exactly like the Node service's: @grpc/grpc-js + @grpc/proto-loader, the unchanged
// seed proto, default loader options. Usage: node seed_client.js ADDRESS PAYLOAD.json
// PAYLOAD is a list of ClassRequest objects; prints every ClassResponse as one JSON line.
'use strict';
const path = require('path');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [address, payloadFile] = process.argv.slice(2);
const definition = protoLoader.loadSync(path.join(__dirname, 'seed', 'class_service.proto'), {
  keepCase: true,
});
const proto = grpc.loadPackageDefinition(definition);
const client = new proto.ClassService(address, grpc.credentials.createInsecure());
const requests = JSON.parse(fs.readFileSync(payloadFile, 'utf8'));

const call = client.CreateClass();
call.on('data', (response) => process.stdout.write(JSON.stringify(response) + '\n'));
call.on('error', (err) => {
  process.stderr.write(`error: ${err.code} ${err.details}\n`);
  process.exit(2);
});
call.on('end', () => client.close());
for (const request of requests) call.write(request);
call.end();
