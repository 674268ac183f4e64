//! End-to-end tests: the real binary, real wasm plugins, real sled files, real processes; the
//! worlds tests drive the sandbox API in process with the same real plugins.

mod support;

mod ansible_plugin;
mod daemon;
mod daemon_support;
mod escapes;
mod execution;
mod failures;
mod hostile_input;
mod http_plugin;
mod http_server;
mod openapi;
mod pip_tools;
mod plugins;
mod project_files;
mod projects;
mod python_plugin;
mod roles;
mod sandbox;
mod scaffold;
mod schemathesis;
mod secrets;
mod seeds;
mod slack_plugin;
mod terraform_plugin;
mod validation;
mod worlds;
