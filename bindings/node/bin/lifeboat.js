#!/usr/bin/env node
'use strict';
// The `lifeboat` command line from npm: the Rust CLI's own code, run in this
// process, so output and exit codes are the binary's.
//
// A no-op SIGINT listener replaces Node's default "exit at once" handler: the
// CLI catches Ctrl-C itself, abandons uploads, cleans up and exits 130, as
// the binary does.
process.on('SIGINT', () => {});

const { runCli } = require('..');

process.exit(runCli(process.argv.slice(2)));
