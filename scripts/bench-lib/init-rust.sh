#!/usr/bin/env bash
# Lambda init of the release `bootstrap`, as deployed: the Lambda takes its tokens only
# from SSM Parameter Store, so this runs under scripts/with-moto (moto's SSM on loopback)
# and lambda_init.py --ssm seeds the two SecureString parameters first.
# usage: scripts/with-moto init-rust.sh OUT_DIR ROOT RUNS EMULATOR [CARGO_LAMBDA]
set -euo pipefail

out=$1 root=$2 runs=$3 emulator=$4 cargo_lambda=${5:-}
lib=$root/scripts/bench-lib
py=$root/.tools/moto/bin/python
bin=$root/target/release/bootstrap
fixture=$root/control-api/tests/fixtures/deploy_bearer.json

args=(--runs "$runs" --emulator "$emulator" --fixture "$fixture" --token test-control-token --ssm)
if [[ $emulator == cargo-lambda ]]; then
	args+=(--cargo-lambda "$cargo_lambda" --manifest "$root/control-api/Cargo.toml")
fi
"$py" "$lib/lambda_init.py" "${args[@]}" --label rust -- "$bin" >"$out/init_rust.json"

# Cross-check of the harness: the same binary against the minimal Python Runtime API.
"$py" "$lib/lambda_init.py" --runs "$runs" --emulator python --fixture "$fixture" \
	--token test-control-token --ssm --label rust -- "$bin" >"$out/init_rust_python.json"
