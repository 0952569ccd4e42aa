//! `sluice mcp`: a Model Context Protocol server over stdio, driven here by a scripted client
//! speaking JSON-RPC lines as MCP clients do (initialize, tools/list, tools/call). The tools
//! answer with the commands' `--json`; the delete guard holds whatever the client sends.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::{Env, SourceKind, StateKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const WAIT: Duration = Duration::from_secs(60);

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    next: u64,
}

impl Client {
    fn start(env: &Env) -> Client {
        let mut child = tokio::process::Command::new(support::sluice_bin())
            .args(["mcp", "--project"])
            .arg(env.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start sluice mcp");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Client { child, stdin, lines, next: 1 }
    }

    async fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{message}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends a request; its response (every line on stdout must be JSON-RPC: logs go to stderr).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })).await;
        let read = async {
            loop {
                let line = self.lines.next_line().await.unwrap().expect("the server answered before it ended");
                let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carries only JSON-RPC ({e}): {line}"));
                assert_eq!(message["jsonrpc"], "2.0", "{message}");
                if message["id"] == id {
                    return message;
                }
            }
        };
        tokio::time::timeout(WAIT, read).await.unwrap_or_else(|_| panic!("no answer to {method} within {WAIT:?}"))
    }

    /// Calls a tool: (is it an error, its text).
    async fn call(&mut self, tool: &str, arguments: Value) -> (bool, String) {
        let answer = self.request("tools/call", json!({ "name": tool, "arguments": arguments })).await;
        let result = &answer["result"];
        assert!(result.is_object(), "{tool}: {answer}");
        let text = result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{tool}: no text: {answer}")).to_string();
        (result["isError"] == true, text)
    }

    /// Calls a tool that must succeed: its JSON.
    async fn json(&mut self, tool: &str, arguments: Value) -> Value {
        let (error, text) = self.call(tool, arguments).await;
        assert!(!error, "{tool} failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}"))
    }
}

#[tokio::test]
async fn an_agent_checks_plans_runs_and_reads_the_history_and_the_delete_guard_holds() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, i * 2 AS v FROM range(1, 11) r(i)").await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"", "SELECT id, v FROM t");
    let mut client = Client::start(&env);

    let init = client
        .request(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "script", "version": "1" } }),
        )
        .await;
    assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");
    client.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;

    let listed = client.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().unwrap_or_else(|| panic!("{listed}"));
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["check", "failures", "log", "plan", "run", "status"]);
    let run = tools.iter().find(|t| t["name"] == "run").unwrap();
    assert!(run["inputSchema"]["properties"].get("allow_deletes").is_none(), "an agent cannot lift the delete guard: {run}");

    let checked = client.json("check", json!({})).await;
    assert_eq!(checked["ok"], true, "{checked}");

    let planned = client.json("plan", json!({ "names": ["people"] })).await;
    assert_eq!(planned["syncs"][0]["added"], 10, "{planned}");
    assert!(env.sink.rows().is_empty(), "a plan sends nothing");

    let ran = client.json("run", json!({})).await;
    assert_eq!((&ran["syncs"][0]["status"], &ran["syncs"][0]["written"]), (&json!("success"), &json!(10)), "{ran}");
    assert_eq!(env.sink.take().len(), 10);

    // Most rows leave the model: the guard stops the run, whatever the client asks for.
    env.exec("DELETE FROM t WHERE id > 2").await;
    let stopped = client.json("run", json!({ "names": ["people"], "allow_deletes": true })).await;
    assert_eq!(stopped["syncs"][0]["status"], "failed", "{stopped}");
    assert!(stopped["syncs"][0]["error"].as_str().unwrap().starts_with("delete guard: "), "{stopped}");
    assert!(env.sink.rows().is_empty(), "nothing sent past the guard");

    let status = client.json("status", json!({ "names": ["people"], "runs": 2 })).await;
    let runs: Vec<&str> = status["syncs"][0]["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(runs, ["failed", "success"], "{status}");
    let failures = client.json("failures", json!({})).await;
    assert_eq!(failures["syncs"][0]["sync"], "people", "{failures}");
    let log = client.json("log", json!({ "name": "people", "key": "3" })).await;
    let logged: Vec<(&str, &str)> =
        log["changes"].as_array().unwrap().iter().map(|c| (c["op"].as_str().unwrap(), c["outcome"].as_str().unwrap())).collect();
    assert_eq!(logged, [("upsert", "written")], "{log}");

    // Bad calls are tool errors with the command's message; the server goes on.
    let (error, text) = client.call("run", json!({ "names": ["nope"] })).await;
    assert!(error && text.contains("nope"), "{text}");
    let (error, text) = client.call("log", json!({ "name": "people", "since": "yesterday-ish" })).await;
    assert!(error && text.contains("since"), "{text}");
    assert_eq!(client.json("check", json!({})).await["ok"], true);

    // The client closes stdin: the server ends, exit 0.
    client.stdin.take();
    let status = tokio::time::timeout(WAIT, client.child.wait()).await.expect("the server ends when stdin closes").unwrap();
    assert!(status.success(), "{status}");
}
