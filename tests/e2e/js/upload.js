// Uploads a file to a print document with the official Microsoft Graph JavaScript SDK
// (@microsoft/microsoft-graph-client 3.0.7, unchanged): createUploadSession, then
// LargeFileUploadTask in several ranges. Run by tests/e2e/test_graph_js_sdk_e2e.py.
//
// usage: node upload.js BASE_URL TOKEN PRINTER JOB DOCUMENT FILE RANGE_SIZE [interrupt]
//   BASE_URL   e.g. https://127.0.0.1:7071 (the SDK only authenticates https custom hosts)
//   interrupt  stop after the first range, then continue in a new task with resume()
// Exits 0 when the last range is answered 201 Created; prints one JSON line to stdout.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { Client, FileUpload, LargeFileUploadTask } = require("@microsoft/microsoft-graph-client");

async function main(argv) {
  const [baseUrl, token, printer, job, document, file, rangeText, mode] = argv;
  const rangeSize = Number(rangeText);
  const client = Client.init({
    authProvider: (done) => done(null, token),
    baseUrl,
    defaultVersion: "beta",
    customHosts: new Set([new URL(baseUrl).hostname]),
  });
  const data = fs.readFileSync(file);
  const resource = `/print/printers/${printer}/jobs/${job}/documents/${document}/createUploadSession`;
  const session = await LargeFileUploadTask.createUploadSession(client, resource, {
    properties: {
      documentName: path.basename(file),
      contentType: "application/octet-stream",
      size: data.length,
    },
  });
  const fileObject = new FileUpload(data, path.basename(file), data.length);
  const ranges = [];
  const uploadEventHandlers = {
    progress: (range) => ranges.push([range.minValue, range.maxValue]),
  };
  let result;
  let resumed = false;
  if (mode === "interrupt") {
    const first = new LargeFileUploadTask(client, fileObject, session, { rangeSize });
    const range = first.getNextRange();
    const sliced = await fileObject.sliceFile(range);
    await first.uploadSliceGetRawResponse(sliced, range, data.length);
    // A new task for the same session, as after a crash: resume() asks the server for
    // nextExpectedRanges and uploads only what is missing.
    const second = new LargeFileUploadTask(client, fileObject, session, {
      rangeSize,
      uploadEventHandlers,
    });
    const status = await second.getStatus();
    ranges.push(["status", status.nextExpectedRanges]);
    result = await second.resume();
    resumed = true;
  } else {
    const task = new LargeFileUploadTask(client, fileObject, session, {
      rangeSize,
      uploadEventHandlers,
    });
    result = await task.upload();
  }
  const body = result.responseBody || {};
  process.stdout.write(
    JSON.stringify({ ok: true, resumed, ranges, location: result.location, body }) + "\n"
  );
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    const detail = require("node:util").inspect(error, { depth: 6 });
    process.stderr.write(`upload.js failed: ${detail}\n`);
    process.exit(1);
  }
);
