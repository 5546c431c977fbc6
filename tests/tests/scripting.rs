//! Scripting against redis-server 7.0.15: the same EVAL/EVALSHA/SCRIPT (and, with
//! `redis.setresp`, RESP3) command streams to both servers, replies byte-identical —
//! return conversions both ways, error texts (with the script's SHA and line), pcall,
//! the sandbox, the `redis` API, the libraries, EVAL_RO and shebang flags, the
//! distributed-lock unlock script. ferrokv runs with two shard threads, so scripts
//! whose keys live on different shards run under several locks.

use ferrokv_tests::resp::show;
use ferrokv_tests::{Conn, Server};

/// Runs every command on a fresh redis-server and a fresh ferrokv (two shards) and
/// compares each reply.
fn same_replies(commands: &[Vec<Vec<u8>>]) {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&["--server-threads", "2"]);
    let (mut r, mut f) = (redis.conn(), ferrokv.conn());
    let mut failures = Vec::new();
    for cmd in commands {
        let want = r.send(cmd);
        let got = f.send(cmd);
        // HELLO's reply names the connection's id, which differs.
        if want != got && !cmd[0].eq_ignore_ascii_case(b"hello") {
            failures.push(format!(
                "{}\n  redis:   {}\n  ferrokv: {}",
                cmd.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" | "),
                show(&want),
                show(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} replies differ:\n{}", failures.len(), commands.len(), failures.join("\n"));
}

/// `EVAL script numkeys keys... args...` (or any command) as arguments.
fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn eval(script: &str, keys: &[&str], args: &[&str]) -> Vec<Vec<u8>> {
    let n = keys.len().to_string();
    let mut v = cmd(&["EVAL", script, &n]);
    v.extend(keys.iter().chain(args).map(|w| w.as_bytes().to_vec()));
    v
}

#[test]
fn return_values_convert_as_in_redis() {
    let scripts = [
        "return 1",
        "return -7",
        "return 3.99",
        "return -3.99",
        "return 1e20",
        "return 'x'",
        "return ''",
        "return true",
        "return false",
        "return nil",
        "return {}",
        "return {1,2,{3,'x'},nil,5}",
        "return {1,{2,{3,{4,{5}}}}}",
        "return {'a', false, 'b'}",
        "return {'a', true, 'b'}",
        "return {ok='FINE'}",
        "return {ok='a\\r\\nb'}",
        "return {err='MYERR something'}",
        "return {err='x'}",
        "return {double=1.5}",
        "return {double=3}",
        "return {big_number='123456789012345678901234567890'}",
        "return {map={a=1}}",
        "return {set={a=true}}",
        "return {verbatim_string={format='txt', string='hi'}}",
        "return redis.status_reply('FINE')",
        "return redis.error_reply('FOO bar')",
        "return redis.error_reply('-FOO bar')",
        "return redis.error_reply('nospace')",
        "return redis.error_reply(1)",
        "return redis.status_reply()",
        "return {1, 'two', {ok='three'}, {err='FOUR four'}}",
        "return function() end",
        "return 'a\\0b'",
        "return redis.REDIS_VERSION",
        "return redis.REDIS_VERSION_NUM",
        "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
        "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
        "return redis.sha1hex('')",
        "return redis.sha1hex('Pizza & Mandolino')",
        "return redis.replicate_commands()",
        "return redis.breakpoint()",
        "return type(redis.debug('x'))",
        "return math.random(10)",
        "return {math.random(), math.random(1, 100), math.random(5)}",
        "math.randomseed(42); return {math.random(1000), math.random(1000)}",
        "return tostring(1/0)",
        "return string.format('%d-%s', 7, 'x')",
        "return #KEYS + #ARGV",
        "return table.concat({'a','b','c'}, ',')",
        "return loadstring('return 1')()",
        "return type(loadstring('syntax error'))",
        "return {pcall(function() error({err='X y'}) end)}",
        "return {pcall(error, 'x')}",
        "return {pcall(function() return redis.call('nosuch') end)}",
        "local a = {} a.b = 1 return a.b",
        "return type(os)",
        "return type(print)",
        "return type(_G)",
        "return redis.acl_check_cmd('get')",
        "return {unpack({1,2,3})}",
        "return select('#', 1, 2, 3)",
        "return coroutine.wrap(function() coroutine.yield(5) end)()",
    ];
    let mut cmds: Vec<Vec<Vec<u8>>> = scripts.iter().map(|s| eval(s, &[], &[])).collect();
    cmds.push(cmd(&["HELLO", "3"]));
    // The same in RESP3, and after redis.setresp(3).
    for s in scripts.iter().take(30) {
        cmds.push(eval(s, &[], &[]));
        cmds.push(eval(&format!("redis.setresp(3); {s}"), &[], &[]));
    }
    same_replies(&cmds);
}

#[test]
fn libraries_bit_and_cjson() {
    let scripts = [
        "return bit.tobit(0xffffffff)",
        "return bit.tobit(2^32 + 5)",
        "return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.bnot(0)}",
        "return {bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(0x12345678, 8), bit.ror(0x12345678, 8)}",
        "return {bit.tohex(255), bit.tohex(-1), bit.tohex(255, 2), bit.tohex(255, -4), bit.bswap(0x12345678)}",
        "return bit.tobit()",
        "return bit.band('x')",
        // A library's error under pcall carries the calling line, as luaL_error's.
        "return {pcall(function() local x = bit.tohex() return x end)}",
        "return {pcall(function() local x = cjson.decode('{') return x end)}",
        "return {pcall(cjson.decode, '{')}",
        "local m = {} for i = 1, 100000 do m[tostring(i)] = i end return #cjson.encode(m)",
        "cjson.decode_max_depth(1000000) local ok, e = pcall(cjson.decode, string.rep('[', 100000)) cjson.decode_max_depth(1000) return e",
        "return cjson.encode({1, 2, 3})",
        "return cjson.encode({a = 1})",
        "return cjson.encode({})",
        "return cjson.encode('a/b\"c\\\\d\\n\\1\\127')",
        "return cjson.encode({1.5, -0.25, 1e100, 123456789012345678, true, false})",
        "return cjson.encode({[1] = 'a', [2] = 'b', [4] = 'd'})",
        "return cjson.encode({[1] = 'a', [100] = 'b'})",
        "return cjson.encode({nested = {deeper = {1, {x = 'y'}}}})",
        "return cjson.encode(cjson.null)",
        "return cjson.encode(function() end)",
        "return cjson.encode({[true] = 1})",
        "return cjson.encode(1/0)",
        "return cjson.encode()",
        "local t = {} t[1] = t return cjson.encode(t)",
        "return cjson.decode('[1,2,3]')",
        "return cjson.decode('{\"a\":{\"b\":[true,false,null,\"x\"]}}').a.b[4]",
        "return cjson.decode('\"\\u00e9\\ud83d\\ude00\\n\\/\"')",
        "return cjson.decode('1.5e3')",
        "return cjson.decode('  -0  ')",
        "return type(cjson.decode('null'))",
        "return cjson.decode('null') == cjson.null",
        "return cjson.decode('[1,2')",
        "return cjson.decode('{\"a\" 1}')",
        "return cjson.decode('{1:2}')",
        "return cjson.decode('tru')",
        "return cjson.decode('')",
        "return cjson.decode('[1] x')",
        "return cjson.decode('\"abc')",
        "return cjson.decode('\"\\q\"')",
        "return cjson.decode('0x10')",
        "return cjson.decode('[' .. string.rep('[', 1100) .. ']')",
        "return cjson.encode(cjson.decode('{\"k\":[1,{\"n\":null}]}'))",
        "return {pcall(cjson.decode, '{')}",
        "return cjson.encode_max_depth()",
        "return {cjson.encode_sparse_array()}",
        // Nesting: 1000 levels by default; raised, as deep as the Lua stack has room
        // for (7997 arrays, 3999 objects), then lua-cjson's error. The settings last for
        // the Lua state, so each script puts the default back.
        "local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end local s = cjson.encode(t) \
         c[1] = {} local ok, e = pcall(cjson.encode, t) return {#s, e}",
        "cjson.encode_max_depth(1000000) local t = {} local c = t for i = 1, 7996 do c[1] = {} c = c[1] end \
         local ok, s = pcall(cjson.encode, t) c[1] = {} local ok2, e = pcall(cjson.encode, t) \
         cjson.encode_max_depth(1000) return {#s, e}",
        "cjson.encode_max_depth(1000000) local t = {} local c = t for i = 1, 3998 do c.a = {} c = c.a end \
         local ok, s = pcall(cjson.encode, t) c.a = {} local ok2, e = pcall(cjson.encode, t) \
         cjson.encode_max_depth(1000) return {#s, e}",
        "cjson.encode_max_depth(1000000) cjson.decode_max_depth(1000000) \
         local ok, v = pcall(cjson.decode, string.rep('[', 7990) .. '{\"k\":[1,2]}' .. string.rep(']', 7990)) \
         local ok2, s = pcall(cjson.encode, v) cjson.encode_max_depth(1000) cjson.decode_max_depth(1000) \
         return {tostring(ok), tostring(ok2), #s, s:sub(7985)}",
        "cjson.encode_max_depth(2000) local t = {} local c = t for i = 1, 2000 do c[1] = {} c = c[1] end \
         local ok, e = pcall(cjson.encode, t) cjson.encode_max_depth(1000) return e",
        "local t = {} t.a = t local ok, e = pcall(cjson.encode, t) return e",
        "return cjson.encode({1, {2, {3, {a = {4, 5}, b = 'x'}}}, 6})",
    ];
    let cmds: Vec<Vec<Vec<u8>>> = scripts.iter().map(|s| eval(s, &[], &[])).collect();
    same_replies(&cmds);
}

/// cmsgpack against redis-server: the bytes of each encoding (returned as a string), a
/// round trip, the stream readers and their errors.
#[test]
fn library_cmsgpack() {
    let scripts = [
        "return cmsgpack.pack(0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)",
        "return cmsgpack.pack(1.5, -0.25, 0.1, 1e300, 2^63, -2^63, 2^53 + 1, 1/0, -1/0)",
        "return cmsgpack.pack('', 'abc', string.rep('x', 31), string.rep('y', 32), string.rep('z', 255), string.rep('w', 256), string.rep('v', 65536))",
        "return cmsgpack.pack(true, false, nil, function() end)",
        "return cmsgpack.pack({}, {1, 2, 3}, {[1] = 'a', [3] = 'c'}, {a = 1}, {1, 2, x = 3})",
        "local t = {} for i = 1, 20 do t[i] = i end return cmsgpack.pack(t)",
        "local t = {} for i = 1, 70000 do t[i] = 0 end return #cmsgpack.pack(t)",
        "local t = {} t[1] = t return cmsgpack.pack(t)",
        "return cmsgpack.pack({{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}})",
        "return cmsgpack.pack()",
        "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4}, true, 2.5))}",
        "local t = cmsgpack.unpack(cmsgpack.pack({a = {b = 'c'}})) return t.a.b",
        "return {cmsgpack.unpack(cmsgpack.pack(-5, 300, -300, 70000, -70000, 5000000000, -5000000000))}",
        "return tostring(cmsgpack.unpack(cmsgpack.pack(0.1)))",
        "local s = cmsgpack.pack(1, 2, 3) return {cmsgpack.unpack_one(s)}",
        "local s = cmsgpack.pack(1, 2, 3) return {cmsgpack.unpack_one(s, 2)}",
        "local s = cmsgpack.pack(1, 2, 3) return {cmsgpack.unpack_limit(s, 2)}",
        "local s = cmsgpack.pack(1, 2, 3) return {cmsgpack.unpack_limit(s, 5, 1)}",
        "return {cmsgpack.unpack_one('', 0)}",
        "return cmsgpack.unpack_one('abc', 10)",
        "return cmsgpack.unpack_limit('abc', -1)",
        "return cmsgpack.unpack('\\205\\1')",
        "return cmsgpack.unpack('\\193')",
        "return cmsgpack.unpack('\\196\\1a')",
        "return cmsgpack.unpack()",
        "return {cmsgpack.unpack('')}",
        "return cmsgpack.unpack(123)",
        "return {cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._DESCRIPTION}",
        "return {pcall(cmsgpack.unpack, '\\218')}",
        // Big and deep inputs: no crash, Redis's answers and errors.
        "local m = {} for i = 1, 100000 do m[tostring(i)] = i end return {#cmsgpack.pack({m = m}), cmsgpack.unpack(cmsgpack.pack({m = m})).m['77777']}",
        "return #cmsgpack.unpack(string.rep('\\145', 200000))",
        "return cmsgpack.unpack(string.rep('\\129', 200000))",
        "return #{cmsgpack.unpack(string.rep('\\1', 8000))}",
        "return #{cmsgpack.unpack(string.rep('\\1', 5000))}",
        "return {pcall(function() local x = cmsgpack.unpack('\\193') return x end)}",
    ];
    let cmds: Vec<Vec<Vec<u8>>> = scripts.iter().map(|s| eval(s, &[], &[])).collect();
    same_replies(&cmds);
}

/// The `struct` library: every option, endianness, alignment, the C conversions at the
/// edges (negative, huge and NaN integers, wide fields), and its errors.
#[test]
fn library_struct() {
    let scripts = [
        "return struct.pack('bBhHlLTiIi1I2i8I16', -1, 255, -2, 65535, -3, 4, 5, -6, 7, -8, 9, -10, 11)",
        "return struct.pack('>bBhHlLTiIi3I5', -1, 255, -2, 65535, -3, 4, 5, -6, 7, -8, 9)",
        "return struct.pack('<i16', -1)",
        "return struct.pack('>I9', 2^63 + 2^62)",
        "return struct.pack('l', 2^64)",
        "return struct.pack('l', 2^70)",
        "return struct.pack('L', -2^70)",
        "return struct.pack('L', 0/0)",
        "return struct.pack('b', 300.7)",
        "return struct.pack('i', '12')",
        "return struct.pack('fd>fd', 1.5, -0.1, 3.25, 1/0)",
        "return struct.pack('!bi!2bi!4bd!bd', 1, 2, 3, 4, 5, 6, 7, 8)",
        "return struct.pack('!8 b x h x i x l x d', 1, 2, 3, 4, 5)",
        "return struct.pack('!i3 b i3 b i3', 1, 2, 3, 4, 5)",
        "return struct.pack('c0c3sxs', 'hello', 'abcdef', 'zero', 'again')",
        "return struct.pack('c3', 'ab')",
        "return struct.pack('bc3', 1, 'ab')",
        "return struct.pack('s', 12.5)",
        "return struct.pack('s', {})",
        "return struct.pack('i', 'x')",
        "return struct.pack('i')",
        "return struct.pack('i', nil)",
        "return struct.pack()",
        "return struct.pack('z', 1)",
        "return struct.pack('5', 1)",
        "return struct.pack('!3')",
        "return struct.pack('i33', 1)",
        "return struct.pack('i99999999999', 1)",
        "return struct.pack('b\\0b', 1, 2)",
        "return struct.pack('')",
        "return {struct.unpack('bBhH', struct.pack('bBhH', -1, 255, -300, 65000))}",
        "return {struct.unpack('>lLi3I3', struct.pack('>lLi3I3', -5, 5, -70000, 70000))}",
        "return {struct.unpack('<i16I16i9', struct.pack('<i16I16i9', -1, 300, -2))}",
        "local a, b, n = struct.unpack('fd', struct.pack('fd', 1.1, 2.2)) return {tostring(a), tostring(b), n}",
        "local a, b, n = struct.unpack('>fd', struct.pack('>fd', -0.5, 1e300)) return {tostring(a), tostring(b), n}",
        "return {struct.unpack('!bi!2bi', struct.pack('!bi!2bi', 1, 2, 3, 4))}",
        "return {struct.unpack('c3xs', 'abcXhello\\0rest')}",
        "return {struct.unpack('bc0', struct.pack('bc0', 5, 'hello'))}",
        "return {struct.unpack('c1c0', '3abcd')}",
        "return {struct.unpack('c0', 'abc')}",
        "return {struct.unpack('xc0', 'abc')}",
        "return {struct.unpack('s', 'abc')}",
        "return {struct.unpack('i', 'abc')}",
        "return {struct.unpack('b', 'abc', 3)}",
        "return {struct.unpack('b', 'abc', 4)}",
        "return {struct.unpack('b', 'abc', 0)}",
        "return {struct.unpack('b', 'abc', -1)}",
        "return {struct.unpack('', 'abc', -5)}",
        "return {struct.unpack('b', 'abc', 2.9)}",
        "return {struct.unpack('b', 'abc', 'x')}",
        "return {struct.unpack('b')}",
        "return {struct.unpack('z', 'abc')}",
        "return {struct.unpack('bxb', 'abc')}",
        "return {struct.unpack('b', 'a')}",
        "return {struct.size('bhilTfdx'), struct.size('!bhilTfdx'), struct.size('!4bd'), struct.size('c5i7'), struct.size('zq')}",
        "return struct.size('s')",
        "return struct.size('c0')",
        "return struct.size('?')",
        "return struct.size('!6')",
        "return struct.size()",
        "return struct.size('')",
        "struct.pack = nil",
        "return {pcall(struct.size, '!3')}",
        // The sandbox's metatables (Redis: read-only tables).
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "setmetatable(cjson, {})",
        "return tostring(getmetatable(cjson))",
        "local t = setmetatable({}, {__index = function() return 5 end}) return t.x",
        // Strings' metatable and its `string` are read-only too, and are the `string` a
        // script sees.
        "getmetatable('').__index.leak = 'x' return 1",
        "return tostring(string.leak)",
        "getmetatable('').__index = {} return 1",
        "local m = getmetatable('') m.x = 1 return 1",
        "return {('abc'):upper(), ('%d'):format(7), type(getmetatable('')), getmetatable('').__index == string}",
    ];
    let cmds: Vec<Vec<Vec<u8>>> = scripts.iter().map(|s| eval(s, &[], &[])).collect();
    same_replies(&cmds);
}

#[test]
fn commands_replies_and_errors_inside_scripts() {
    let mut cmds = vec![
        cmd(&["SET", "k", "v"]),
        cmd(&["RPUSH", "l", "a", "b", "c"]),
        cmd(&["HSET", "h", "f", "1", "g", "2"]),
        cmd(&["ZADD", "z", "1.5", "a", "2", "b"]),
        cmd(&["SADD", "s", "m"]),
        eval("return redis.call('get', KEYS[1])", &["k"], &[]),
        eval("return redis.call('get', KEYS[1])", &["missing"], &[]),
        eval("return redis.call('lrange', KEYS[1], 0, -1)", &["l"], &[]),
        eval("return redis.call('hgetall', KEYS[1])", &["h"], &[]),
        eval("return redis.call('zrange', KEYS[1], 0, -1, 'withscores')", &["z"], &[]),
        eval("return redis.call('smembers', KEYS[1])", &["s"], &[]),
        eval("return redis.call('set', KEYS[1], 'x')", &["k2"], &[]),
        eval("return redis.call('incr', KEYS[1])", &["n"], &[]),
        eval("return redis.call('incrbyfloat', KEYS[1], 1.5)", &["f"], &[]),
        eval("return redis.call('incr', KEYS[1])", &["k"], &[]),
        eval("return redis.pcall('incr', KEYS[1])", &["k"], &[]),
        eval("return redis.call('lpush', KEYS[1], 'x')", &["k"], &[]),
        eval("return redis.pcall('lpush', KEYS[1], 'x')", &["k"], &[]),
        eval("local r = redis.pcall('lpush', KEYS[1], 'x') return r.err", &["k"], &[]),
        eval("return redis.call('nosuch')", &[], &[]),
        eval("return redis.pcall('nosuch')", &[], &[]),
        eval("return redis.call('get')", &[], &[]),
        eval("return redis.call()", &[], &[]),
        eval("return redis.pcall()", &[], &[]),
        eval("return redis.call('get', {})", &[], &[]),
        eval("return redis.call('eval', 'return 1', 0)", &[], &[]),
        eval("return redis.call('blpop', 'x', 0)", &[], &[]),
        eval("return redis.call('multi')", &[], &[]),
        eval("return redis.call('ping')", &[], &[]),
        eval("return redis.call('ping', 'hi')", &[], &[]),
        eval("return redis.call('echo', 'hi')", &[], &[]),
        eval("return redis.call('set', KEYS[1], 3.5)", &["num"], &[]),
        eval("return redis.call('set', KEYS[1], 12345678901234567)", &["num"], &[]),
        eval("return redis.call('get', KEYS[1])", &["num"], &[]),
        eval("a = 5", &[], &[]),
        eval("return a", &[], &[]),
        eval("redis.call = nil", &[], &[]),
        eval("string.x = 1", &[], &[]),
        eval("rawset(_G, 'x', 1)", &[], &[]),
        eval("error('boom')", &[], &[]),
        eval("error({err='MY boom'})", &[], &[]),
        eval("error()", &[], &[]),
        eval("local t = nil; return t.x", &[], &[]),
        eval("return 1 +", &[], &[]),
        eval("syntax error here", &[], &[]),
        eval("\nreturn redis.call('nosuch')", &[], &[]),
        eval("return redis.setresp(4)", &[], &[]),
        eval("return redis.set_repl(99)", &[], &[]),
        eval("return redis.log(99, 'x')", &[], &[]),
        eval("return redis.log(redis.LOG_WARNING)", &[], &[]),
        eval("return redis.sha1hex()", &[], &[]),
        eval("return redis.acl_check_cmd('nosuch')", &[], &[]),
        cmd(&["EVAL", "return 1", "-1"]),
        cmd(&["EVAL", "return 1", "2", "a"]),
        cmd(&["EVAL", "return 1", "x"]),
        cmd(&["EVAL", "return 1"]),
        cmd(&["EVALSHA", "abc", "0"]),
        cmd(&["EVALSHA", "0123456789012345678901234567890123456789", "0"]),
    ];
    // The distributed-lock unlock script, both outcomes, by EVALSHA too.
    let unlock = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
    cmds.push(cmd(&["SET", "lock:1", "token-a"]));
    cmds.push(eval(unlock, &["lock:1"], &["token-b"]));
    cmds.push(eval(unlock, &["lock:1"], &["token-a"]));
    cmds.push(cmd(&["EXISTS", "lock:1"]));
    cmds.push(cmd(&["SCRIPT", "LOAD", unlock]));
    cmds.push(cmd(&["SET", "lock:2", "t"]));
    same_replies(&cmds);
}

/// Server commands from a script: those Redis 7.0 flags `noscript` are refused with its
/// text (connection state, CONFIG, replication, persistence, subscriptions, SCRIPT and
/// FUNCTION), the others run (INFO, COMMAND, MEMORY, PUBSUB, LASTSAVE, TIME, the HELP
/// subcommands, CLUSTER/ASKING/READONLY refused outside cluster mode).
#[test]
fn server_commands_inside_scripts() {
    let mut cmds = vec![cmd(&["SET", "k", "v"]), cmd(&["SET", "k2", "v"])];
    for refused in [
        "'config', 'get', 'maxmemory'",
        "'config', 'set', 'maxmemory', '0'",
        "'config', 'resetstat'",
        "'client', 'id'",
        "'client', 'list'",
        "'client', 'setname', 'x'",
        "'client', 'tracking', 'on'",
        "'role'",
        "'wait', '0', '0'",
        "'save'",
        "'bgsave'",
        "'bgrewriteaof'",
        "'replicaof', 'no', 'one'",
        "'subscribe', 'ch'",
        "'psubscribe', 'ch*'",
        "'unsubscribe'",
        "'watch', 'k'",
        "'unwatch'",
        "'multi'",
        "'exec'",
        "'discard'",
        "'hello'",
        "'auth', 'x'",
        "'reset'",
        "'quit'",
        "'shutdown'",
        "'script', 'load', 'return 1'",
        "'script', 'flush'",
        "'function', 'list'",
        "'function', 'flush'",
        "'eval', 'return 1', '0'",
        "'fcall', 'f', '0'",
        "'cluster', 'reset'",
    ] {
        cmds.push(eval(&format!("return redis.pcall({refused})"), &[], &[]));
        cmds.push(eval(&format!("return redis.call({refused})"), &[], &[]));
    }
    for allowed in [
        "return type(redis.call('command', 'count'))",
        "return redis.call('command', 'info', 'get', 'set', 'nosuch')",
        "return redis.call('command', 'getkeys', 'mset', 'a', '1', 'b', '2')",
        "return redis.call('command', 'getkeysandflags', 'set', 'a', 'b')",
        "return redis.pcall('command', 'getkeys', 'ping')",
        "return type(redis.call('command', 'help'))",
        "return type(redis.call('client', 'help'))",
        "return redis.call('config', 'help')",
        "return redis.call('script', 'help')",
        "return redis.call('pubsub', 'help')",
        "return redis.call('pubsub', 'numsub', 'a', 'b')",
        "return redis.call('pubsub', 'numpat')",
        "return redis.call('pubsub', 'channels')",
        "return redis.call('pubsub', 'shardchannels')",
        "return redis.call('publish', 'nobody', 'm')",
        "return redis.call('spublish', 'nobody', 'm')",
        "return redis.pcall('cluster', 'info')",
        "return redis.pcall('cluster', 'keyslot', 'x')",
        "return redis.pcall('asking')",
        "return redis.pcall('readonly')",
        "return redis.pcall('readwrite')",
        "return type(redis.call('lastsave'))",
        "return type(redis.call('time')[1])",
        "local s = redis.call('info') return string.sub(s, 1, 8)",
        "local s = redis.call('info', 'server') return string.match(s, 'redis_version:[%d.]+')",
        "local s = redis.call('info', 'keyspace') return string.match(s, 'db0:keys=%d+')",
        "local s = redis.call('info', 'clients') return string.sub(s, 1, 9)",
        "return type(redis.call('memory', 'stats'))",
        "return type(redis.call('memory', 'usage', KEYS[1]))",
        "return redis.call('dbsize')",
    ] {
        cmds.push(eval(allowed, &["k"], &[]));
    }
    // A read-only script may not publish (PUBLISH may replicate).
    cmds.push(cmd(&["EVAL_RO", "return redis.pcall('publish', 'c', 'm')", "0"]));
    cmds.push(cmd(&["EVAL_RO", "return redis.pcall('spublish', 'c', 'm')", "0"]));
    cmds.push(cmd(&["EVAL", "#!lua flags=no-writes\nreturn redis.pcall('publish', 'c', 'm')", "0"]));
    same_replies(&cmds);
}

/// A script's PUBLISH reaches subscribers as the command's does, after the script's
/// keyspace events and in the order the script ran them; its reply counts them.
#[test]
fn publish_from_a_script_reaches_subscribers() {
    let redis = Server::redis(&["--notify-keyspace-events", "KEA"]);
    let ferrokv = Server::ferrokv(&["--server-threads", "2", "--notify-keyspace-events", "KEA"]);
    let mut got = Vec::new();
    for server in [&redis, &ferrokv] {
        let mut subs: Vec<_> = (0..3).map(|_| server.conn()).collect();
        let mut frames = Vec::new();
        for s in subs.iter_mut() {
            frames.push(s.send(&cmd(&["SUBSCRIBE", "news"])));
            frames.push(s.send(&cmd(&["PSUBSCRIBE", "__key*__:*"])));
        }
        let mut c = server.conn();
        let script = "redis.call('publish', 'news', 'a') redis.call('set', KEYS[1], 'x') \
                      local n = redis.call('publish', 'news', 'b') return {n, redis.call('publish', 'none', 'c')}";
        frames.push(c.send(&eval(script, &["k"], &[])));
        frames.push(c.send(&eval("return redis.call('publish', 'news', ARGV[1])", &[], &["z"])));
        for s in subs.iter_mut() {
            // a, the two events of SET, b, z
            for _ in 0..5 {
                frames.push(s.read_reply().expect("a message"));
            }
        }
        got.push(frames);
    }
    assert_eq!(got[0].len(), got[1].len());
    for (w, g) in got[0].iter().zip(&got[1]) {
        assert_eq!(show(w), show(g));
    }
}

#[test]
fn script_cache_read_only_runs_and_shebang_flags() {
    let unlock = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
    let sha = sha1(unlock);
    let cmds = vec![
        cmd(&["SCRIPT", "EXISTS", &sha, "ffffffffffffffffffffffffffffffffffffffff"]),
        cmd(&["SCRIPT", "LOAD", unlock]),
        cmd(&["SCRIPT", "EXISTS", &sha, &sha.to_uppercase()]),
        cmd(&["SET", "lock", "me"]),
        cmd(&["EVALSHA", &sha, "1", "lock", "you"]),
        cmd(&["EVALSHA", &sha.to_uppercase(), "1", "lock", "me"]),
        cmd(&["EVALSHA_RO", &sha, "1", "lock", "me"]),
        cmd(&["SCRIPT", "FLUSH"]),
        cmd(&["SCRIPT", "EXISTS", &sha]),
        cmd(&["EVALSHA", &sha, "1", "lock", "me"]),
        cmd(&["SCRIPT", "FLUSH", "ASYNC"]),
        cmd(&["SCRIPT", "FLUSH", "SYNC"]),
        cmd(&["SCRIPT", "FLUSH", "BAD"]),
        cmd(&["SCRIPT", "LOAD", "return +"]),
        cmd(&["SCRIPT", "HELP"]),
        cmd(&["SCRIPT", "NOSUCH"]),
        cmd(&["SCRIPT", "KILL"]),
        cmd(&["SET", "k", "v"]),
        cmd(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"]),
        cmd(&["EVAL_RO", "return redis.call('set', KEYS[1], 'x')", "1", "k"]),
        cmd(&["EVAL_RO", "return redis.call('del', KEYS[1])", "1", "k"]),
        cmd(&["EVAL_RO", "return redis.pcall('set', KEYS[1], 'x')", "1", "k"]),
        cmd(&["EVAL", "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'x')", "1", "k"]),
        cmd(&["EVAL", "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", "1", "k"]),
        cmd(&["EVAL_RO", "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", "1", "k"]),
        cmd(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua\nreturn redis.call('set', KEYS[1], 'y')", "1", "k"]),
        cmd(&["EVAL", "#!lua flags=allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=bogus\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua name=x\nreturn 1", "0"]),
        cmd(&["EVAL", "#!python\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua", "0"]),
        cmd(&["EVAL", "#!lua\nreturn redis.call('nosuch')", "0"]),
        cmd(&["GET", "k"]),
    ];
    same_replies(&cmds);
}

/// The hex SHA-1 of a script, as SCRIPT LOAD names it (asked of redis-server).
fn sha1(body: &str) -> String {
    let redis = Server::redis(&[]);
    let reply = redis.conn().send(&cmd(&["SCRIPT", "LOAD", body]));
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines().nth(1).unwrap_or_default().to_string()
}

/// A script's writes reach the keyspace atomically across shards, and propagate as
/// the commands it ran: a replica (ferrokv) of a ferrokv master ends with the same data.
#[test]
fn scripts_over_several_shards_are_atomic_and_replicate_their_effects() {
    let master = Server::ferrokv(&["--server-threads", "2"]);
    let replica = Server::ferrokv(&["--server-threads", "2"]);
    let mut m = master.conn();
    let mut r = replica.conn();
    let port = master.port().to_string();
    assert_eq!(r.send(&cmd(&["REPLICAOF", "127.0.0.1", &port])), b"+OK\r\n");
    // Keys chosen to land on both shards; one script moves a value between them.
    let keys: Vec<String> = (0..8).map(|i| format!("acct:{i}")).collect();
    for k in &keys {
        assert_eq!(m.send(&cmd(&["SET", k, "100"])), b"+OK\r\n");
    }
    let transfer = "local a = redis.call('decrby', KEYS[1], ARGV[1]) redis.call('incrby', KEYS[2], ARGV[1]) \
                    redis.call('set', KEYS[3], 'last') return a";
    for i in 0..40 {
        let (a, b) = (&keys[i % 8], &keys[(i * 3 + 1) % 8]);
        if a == b {
            continue;
        }
        let reply = m.send(&eval(transfer, &[a, b, "log"], &["7"]));
        assert_eq!(reply[0], b':', "{}", show(&reply));
    }
    // No declared keys: the script takes each shard's lock as it reaches a key there.
    assert_eq!(m.send(&eval("return redis.call('incr', 'undeclared')", &[], &[])), b":1\r\n");
    let total = "local s = 0 for _, k in ipairs(KEYS) do s = s + tonumber(redis.call('get', k)) end return s";
    let mut all: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    assert_eq!(m.send(&eval(total, &all, &[])), b":800\r\n");
    all.clear();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let want = m.send(&cmd(&[
            "MGET",
            "acct:0",
            "acct:1",
            "acct:2",
            "acct:3",
            "acct:4",
            "acct:5",
            "acct:6",
            "acct:7",
            "log",
            "undeclared",
        ]));
        let got = r.send(&cmd(&[
            "MGET",
            "acct:0",
            "acct:1",
            "acct:2",
            "acct:3",
            "acct:4",
            "acct:5",
            "acct:6",
            "acct:7",
            "log",
            "undeclared",
        ]));
        if want == got {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica differs:\n{}\n{}", show(&want), show(&got));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const LIB: &str = "#!lua name=mylib
redis.register_function('myfunc', function(keys, args) return redis.call('set', keys[1], args[1]) end)
redis.register_function{function_name='ro', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}
redis.register_function{function_name='boom', callback=function() error('bad') end, flags={'allow-oom', 'allow-stale'}}";

#[test]
fn function_lifecycle_as_in_redis() {
    let lib2 = "#!lua name=other\nredis.register_function('echo', function(keys, args) return {keys, args} end)";
    let cmds = vec![
        cmd(&["FUNCTION", "FLUSH"]),
        cmd(&["FUNCTION", "LIST"]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "LOAD", LIB]),
        cmd(&["FUNCTION", "LOAD", LIB]),
        cmd(&["FUNCTION", "LOAD", "REPLACE", LIB]),
        cmd(&["FUNCTION", "LOAD", lib2]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=third\nredis.register_function('ECHO', function() return 1 end)"]),
        // Loading sees only `redis` (register_function, log, versions): no math, string...
        cmd(&["FUNCTION", "LOAD", "#!lua name=m1\nlocal x = math.floor(1)"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=m2\nlocal x = tostring(1)"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=m3\nlocal x = redis.REPL_ALL"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=m4\nlocal x = redis.LOG_WARNING .. redis.REDIS_VERSION_NUM"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=\"quoted\"\nredis.register_function('q', function() return 1 end)"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=\"open\nredis.register_function('q2', function() return 1 end)"]),
        cmd(&["FCALL", "myfunc", "1", "fk", "v"]),
        cmd(&["FCALL", "MyFunc", "1", "fk", "v"]),
        cmd(&["function", "Restore", "a", "b", "c"]),
        cmd(&["FUNCTION", "FLUSH", "bad"]),
        cmd(&["FUNCTION", "flush", "sync", "extra"]),
        cmd(&["FCALL_RO", "RO", "1", "fk"]),
        cmd(&["FCALL_RO", "ro", "1", "fk"]),
        cmd(&["FCALL", "ro", "1", "fk"]),
        cmd(&["FCALL_RO", "myfunc", "1", "fk", "x"]),
        cmd(&["FCALL", "boom", "0"]),
        cmd(&["FCALL", "echo", "2", "a", "b", "c"]),
        cmd(&["FCALL", "nosuch", "0"]),
        cmd(&["FCALL", "ro", "x"]),
        cmd(&["FCALL", "ro", "5", "a"]),
        cmd(&["FCALL", "ro", "-1"]),
        // Libraries and functions are listed in ferrokv's order (Redis's is its dict
        // order): compare single-function libraries one at a time.
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "oth*", "WITHCODE"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "other"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=flagged\nredis.register_function{function_name='fl', callback=function() return 1 end, flags={'no-writes', 'allow-oom', 'no-cluster'}, description='d'}"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "flag*"]),
        cmd(&["FCALL", "fl", "0"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "zz*", "WITHCODE"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME"]),
        cmd(&["FUNCTION", "LIST", "BOGUS"]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "KILL"]),
        cmd(&["FUNCTION", "HELP"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nreturn 1"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nredis.call('ping')"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nredis.register_function('a b', function() end)"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nredis.register_function('f')"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nredis.register_function{function_name='f', callback=function() end, flags={'bogus'}}"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nredis.register_function('echo', function() end)"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nx = 1"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=bad\nsyntax error"]),
        cmd(&["FUNCTION", "LOAD", "no shebang"]),
        cmd(&["FUNCTION", "LOAD", "#!lua"]),
        cmd(&["FUNCTION", "LOAD", "#!lua\n"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=a name=b\n"]),
        cmd(&["FUNCTION", "LOAD", "#!lua foo=bar\n"]),
        cmd(&["FUNCTION", "LOAD", "#!js name=x\n"]),
        cmd(&["FUNCTION", "LOAD", "#!lua name=a-b\n"]),
        cmd(&["FUNCTION", "LOAD", "BOGUS", LIB]),
        cmd(&["FUNCTION", "LOAD", "REPLACE"]),
        cmd(&["EVAL", "return redis.register_function('x', function() end)", "0"]),
        cmd(&["FUNCTION", "DELETE", "other"]),
        cmd(&["FUNCTION", "DELETE", "other"]),
        cmd(&["FCALL", "echo", "0"]),
        cmd(&["FUNCTION", "FLUSH", "BAD"]),
        cmd(&["FUNCTION", "RESTORE", "bogus"]),
        cmd(&["FUNCTION", "RESTORE", "x", "BADPOLICY"]),
    ];
    same_replies(&cmds);
}

/// FUNCTION DUMP's payload restores on the other server (both ways), under each policy.
#[test]
fn function_dump_restores_across_servers() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&["--server-threads", "2"]);
    let (mut r, mut f) = (redis.conn(), ferrokv.conn());
    for c in [&mut r, &mut f] {
        assert_eq!(c.send(&cmd(&["FUNCTION", "LOAD", LIB])), b"$5\r\nmylib\r\n");
    }
    let from_redis = r.call(&cmd(&["FUNCTION", "DUMP"]));
    let from_ferrokv = f.call(&cmd(&["FUNCTION", "DUMP"]));
    let (ferrokv_tests::resp::Reply::Bulk(Some(a)), ferrokv_tests::resp::Reply::Bulk(Some(b))) =
        (from_redis, from_ferrokv)
    else {
        panic!("DUMP did not answer a bulk string");
    };
    assert_eq!(a, b, "FUNCTION DUMP payloads differ");
    for (c, payload) in [(&mut r, &b), (&mut f, &a)] {
        let mut with = |words: &[&[u8]]| c.send(&words.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
        assert_eq!(
            with(&[b"FUNCTION", b"RESTORE", payload]).starts_with(b"-ERR Library mylib already exists"),
            true,
            "APPEND onto an existing library"
        );
        assert_eq!(with(&[b"FUNCTION", b"RESTORE", payload, b"REPLACE"]), b"+OK\r\n");
        assert_eq!(with(&[b"FUNCTION", b"RESTORE", payload, b"FLUSH"]), b"+OK\r\n");
        assert_eq!(with(&[b"FCALL", b"myfunc", b"1", b"k", b"v"]), b"+OK\r\n");
    }
}

/// A script that spins: past busy-reply-threshold other clients get BUSY, SCRIPT KILL
/// ends it, and the node answers again. The spinning script runs on one shard thread
/// (a keyless script runs on its connection's shard); the other thread keeps answering:
/// a client there gets BUSY. Each shard's own port (`core-ports`) puts the spinner on
/// shard 0 and the other client on shard 1 (connections to the main port land on
/// either thread, and all of them landing on the spinner's made this test fail 1 run
/// in 256).
#[test]
fn a_spinning_script_gets_busy_replies_and_script_kill() {
    let ports = [ferrokv_tests::server::free_port(), ferrokv_tests::server::free_port()];
    let list = format!("{} {}", ports[0], ports[1]);
    let _server = Server::ferrokv(&["--server-threads", "2", "--busy-reply-threshold", "100", "--core-ports", &list]);
    let mut spinner = Conn::connect(ports[0]).expect("shard 0's port");
    let mut c = Conn::connect(ports[1]).expect("shard 1's port");
    let spin = "while true do end";
    spinner.write_raw(format!("*3\r\n$4\r\nEVAL\r\n${}\r\n{spin}\r\n$1\r\n0\r\n", spin.len()).as_bytes()).unwrap();
    c.set_timeout(std::time::Duration::from_secs(10));
    // Until the script has run past the threshold, the other shard answers normally.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reply = c.send(&cmd(&["GET", "x"]));
        if reply.starts_with(b"-BUSY") {
            break;
        }
        assert_eq!(reply, b"$-1\r\n");
        assert!(std::time::Instant::now() < deadline, "no BUSY while the script spun");
    }
    assert_eq!(c.send(&cmd(&["SCRIPT", "KILL"])), b"+OK\r\n");
    spinner.set_timeout(std::time::Duration::from_secs(10));
    let reply = spinner.read_reply().expect("the killed script's reply");
    assert!(reply.starts_with(b"-ERR Script killed by user with SCRIPT KILL..."), "{}", show(&reply));
    assert_eq!(c.send(&cmd(&["SCRIPT", "KILL"])), b"-NOTBUSY No scripts in execution right now.\r\n");
    assert_eq!(spinner.send(&cmd(&["PING"])), b"+PONG\r\n");
}

/// `min-replicas-to-write` short of replicas: a script with a shebang that may write is
/// refused before it runs, one without a shebang when it writes (Redis's
/// scriptPrepareForRun and scriptVerifyWriteCommandAllow).
#[test]
fn too_few_replicas_refuse_writing_scripts() {
    let cmds = vec![
        cmd(&["SET", "x", "some value"]),
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
        eval("#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", &["x"], &[]),
        eval("return redis.call('get', KEYS[1])", &["x"], &[]),
        eval("#!lua\nreturn redis.call('get', KEYS[1])", &["x"], &[]),
        eval("return redis.call('set', KEYS[1], 1)", &["x"], &[]),
        eval("return redis.pcall('set', KEYS[1], 1)", &["x"], &[]),
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
        cmd(&["GET", "x"]),
    ];
    same_replies(&cmds);
}

/// An error a script's `redis.call`/`redis.pcall` got is counted once in INFO
/// errorstats, when the command replied it, not again when the script replies it
/// (Redis's `ignore_error_stats_update`); `redis.call` takes 7999 arguments (Lua 5.1's
/// stack, as Redis) and passes numbers as `%.17g`. Replies and statistics diffed.
#[test]
fn script_errors_count_once_and_calls_take_thousands_of_arguments() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&["--server-threads", "2"]);
    let massive = "local a = {} for i = 1, 7999 do a[i] = i end return redis.call('lpush', KEYS[1], unpack(a))";
    let steps: Vec<Vec<Vec<u8>>> = vec![
        cmd(&["CONFIG", "SET", "maxmemory", "1"]),
        eval("return redis.call('set', 'x', 'y')", &["x"], &[]),
        eval("return redis.pcall('set', 'x', 'y')", &["x"], &[]),
        eval("local t = redis.pcall('set', 'x', 'y') return t['err']", &["x"], &[]),
        cmd(&["CONFIG", "SET", "maxmemory", "0"]),
        eval("return redis.call('select', 99)", &[], &[]),
        eval("return redis.pcall('select', 99)", &[], &[]),
        cmd(&["SET", "s", "1"]),
        eval("return redis.call('lpush', KEYS[1], 'a')", &["s"], &[]),
        eval("return redis.call('nosuchcommand')", &[], &[]),
        cmd(&["EVAL_RO", "return redis.call('set', 'x', 'y')", "1", "x"]),
        eval("return {err = 'MY_CODE raised by the script'}", &[], &[]),
        eval(massive, &["l"], &[]),
        eval("redis.call('set', KEYS[1], 1e17) return redis.call('get', KEYS[1])", &["n"], &[]),
        eval("return redis.call('set', KEYS[1], 0.1)", &["n"], &[]),
        cmd(&["GET", "n"]),
    ];
    let mut seen = Vec::new();
    for server in [&redis, &ferrokv] {
        let mut c = server.conn();
        c.send(&["CONFIG", "RESETSTAT"]);
        let mut got: Vec<String> = steps.iter().map(|s| show(&c.send(s))).collect();
        let info = String::from_utf8_lossy(&c.send(&["INFO", "ALL"])).into_owned();
        got.extend(
            info.lines()
                .filter(|l| l.starts_with("errorstat_") || l.starts_with("total_error_replies"))
                .map(String::from),
        );
        seen.push(got);
    }
    assert_eq!(seen[1], seen[0], "ferrokv (left) against redis-server");
}
