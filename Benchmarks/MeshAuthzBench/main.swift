// In-process decision benchmark: the compiled matcher vs the reference evaluator on generated meshes.
//
//   MeshAuthzBench [--size N]... [--seconds S]            measure (one process per size gives clean RSS)
//   MeshAuthzBench --size N --write-policies DIR          write the mesh's policy files (for `meshauthz serve`)
//   MeshAuthzBench --size N --write-wrk FILE              write a wrk Lua script of /ext_authz requests
//   MeshAuthzBench --size N --write-wrk-check FILE        write a wrk Lua script of POST /v1/check requests
//   MeshAuthzBench --size N --write-requests FILE         the /ext_authz requests, one per line (method, path, headers)
//   MeshAuthzBench --size N --callgrind D                 D decisions only, each in `callgrindDecision` (see below)
//
// Prints a human-readable report and one `ROW|...` line per size for Benchmarks/run.sh.
#if canImport(Glibc)
import Glibc
#endif
import MeshAuthz

func nanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Resident set size from /proc/self/status, in KiB.
func residentKiB() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") {
            return Int(text.dropFirst(6).filter { $0.isNumber }) ?? -1
        }
    }
    return -1
}

func writeFile(_ path: String, _ text: String) {
    guard let file = fopen(path, "w") else { fatalError("cannot write \(path)") }
    _ = text.utf8CString.withUnsafeBufferPointer { fputs($0.baseAddress!, file) }
    fclose(file)
}

func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func format(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = "\(rounded)"
    if digits == 0, text.hasSuffix(".0") { text.removeLast(2) }
    return text
}

/// Timer cost: median of back-to-back readings, subtracted from each single-decision sample.
func timerOverhead() -> UInt64 {
    var samples: [UInt64] = []
    for _ in 0..<100_000 {
        let a = nanoseconds()
        let b = nanoseconds()
        samples.append(b - a)
    }
    samples.sort()
    return percentile(samples, 0.5)
}

struct Measurement {
    var median: UInt64
    var p99: UInt64
    var perSecond: Double
    var samples: Int
}

/// Reads every byte of a request, as a server has just done when it parsed it (done before a timed sample,
/// outside the timing): the single-decision figures measure the decision, not the fetching of a request
/// this harness happens to have created long ago. The throughput loop does not warm (a conservative figure).
@inline(never)
func warm(_ request: CheckRequest) -> Int {
    var h = 0
    @inline(__always) func touch(_ s: String?) { if let s { for b in s.utf8 { h &+= Int(b) } } }
    touch(request.source.principal); touch(request.source.requestPrincipal); touch(request.destination.namespace)
    touch(request.request.method); touch(request.request.path); touch(request.request.host); touch(request.connection.sni)
    for (key, value) in request.destination.labels { touch(key); touch(value) }
    for (key, value) in request.request.headers { touch(key); touch(value) }
    return h
}

/// Single decisions timed one by one (median, p99), then a tight loop for decisions per second. Requests
/// are read in place (borrowed), so the harness adds no copies or reference counting of its own.
func measure(_ requestArray: [CheckRequest], budgetSeconds: Double, maxSamples: Int, overhead: UInt64,
             _ evaluate: (CheckRequest) -> Decision) -> Measurement {
    requestArray.withUnsafeBufferPointer { requests in
        var checksum = 0
        // Warm up.
        for i in 0..<min(requests.count, maxSamples / 10 + 1) { checksum &+= evaluate(requests[i]).allowed ? 1 : 0 }
        var samples = [UInt64](repeating: 0, count: maxSamples)
        var taken = 0
        let deadline = nanoseconds() + UInt64(budgetSeconds * 0.5e9)
        var i = 0
        while taken < maxSamples && (taken < 50 || nanoseconds() < deadline) {
            checksum &+= warm(requests[i])
            let start = nanoseconds()
            let allowed = evaluate(requests[i]).allowed
            let end = nanoseconds()
            i = i + 1 == requests.count ? 0 : i + 1
            checksum &+= allowed ? 1 : 0
            samples[taken] = end - start > overhead ? end - start - overhead : 0
            taken += 1
        }
        var sorted = Array(samples[..<taken])
        sorted.sort()
        // Throughput: back to back, no timer in the loop.
        var count = 0
        let start = nanoseconds()
        let loopDeadline = start + UInt64(budgetSeconds * 0.5e9)
        var now = start
        let batch = max(1, min(requests.count, maxSamples / 20))
        repeat {
            for j in 0..<batch {
                checksum &+= evaluate(requests[j]).allowed ? 1 : 0
            }
            count += batch
            now = nanoseconds()
        } while now < loopDeadline
        if checksum == -1 { print("") }  // keeps the work observable
        return Measurement(median: percentile(sorted, 0.5), p99: percentile(sorted, 0.99),
                           perSecond: Double(count) / (Double(now - start) / 1e9), samples: taken)
    }
}

// MARK: Arguments

var sizes: [Int] = []
var seconds = 4.0
var writePolicies: String? = nil
var writeWrk: String? = nil
var writeWrkCheck: String? = nil
var writeRequests: String? = nil
var onlyCompiled = false
var compileOptions = CompileOptions()
var pauseSeconds: UInt32 = 0
var callgrindDecisions = 0
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--size": sizes.append(Int(arguments.popFirst() ?? "") ?? 0)
    case "--seconds": seconds = Double(arguments.popFirst() ?? "") ?? seconds
    case "--write-policies": writePolicies = arguments.popFirst()
    case "--write-wrk": writeWrk = arguments.popFirst()
    case "--write-wrk-check": writeWrkCheck = arguments.popFirst()
    case "--write-requests": writeRequests = arguments.popFirst()
    case "--only-compiled": onlyCompiled = true  // for profiling
    case "--pause": pauseSeconds = UInt32(arguments.popFirst() ?? "") ?? 0  // before measuring (callgrind_control -i on)
    case "--callgrind": callgrindDecisions = Int(arguments.popFirst() ?? "") ?? 0
    case "--threshold": compileOptions.indexThreshold = Int(arguments.popFirst() ?? "") ?? compileOptions.indexThreshold
    case "--jwt-profile":
        JWTBench.profile(Int(arguments.popFirst() ?? "") ?? 100_000)
        exit(0)
    case "--jwt":  // token validation per algorithm (JWTBench.swift), then exit
        var directory: String? = nil
        if arguments.first == "--jwt-write" { arguments.removeFirst(); directory = arguments.popFirst() }
        JWTBench.run(write: directory)
        exit(0)
    default:
        print("usage: MeshAuthzBench [--size N]... [--seconds S] [--write-policies DIR] [--write-wrk FILE]")
        exit(2)
    }
}
if sizes.isEmpty { sizes = [10, 1000, 10000] }

// MARK: Writing inputs for the HTTP benchmark

/// A Lua string literal.
func lua(_ text: String) -> String {
    "\"" + text.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"") + "\""
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

func wrkScript(_ entries: [String], _ what: String) -> String {
    """
    -- generated by MeshAuthzBench: \(what) drawn from the benchmark mesh
    local requests = {
    \(entries.joined(separator: ",\n"))
    }
    local prepared = {}
    init = function(args)
      for i, r in ipairs(requests) do
        prepared[i] = wrk.format(r[1], r[2], r[3], r[4])
      end
    end
    local counter = 0
    request = function()
      counter = counter % #prepared + 1
      return prepared[counter]
    end

    """
}

/// The /ext_authz form of a request: method, path and headers (Envoy ext_authz HTTP with path_prefix).
func extAuthz(_ request: CheckRequest) -> (method: String, path: String, headers: [(String, String)]) {
    let labels = request.destination.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    var headers = [
        ("x-forwarded-client-cert", "By=spiffe://cluster.local/ns/\(request.destination.namespace!)/sa/server;URI=\(request.source.principal!)"),
        ("x-authz-namespace", request.destination.namespace!), ("x-authz-workload", labels),
        // "Host", capitalized: wrk.format adds its own `Host` unless the table has that very key, and two Host
        // headers are refused as ambiguous framing (every request would measure a refusal).
        ("Host", request.request.host!),
    ]
    if let tenant = request.request.headers["x-tenant"] { headers.append(("x-tenant", tenant)) }
    return (request.request.method!, "/ext_authz" + request.request.path!, headers)
}

/// The POST /v1/check body of a request.
func checkBody(_ request: CheckRequest) -> String {
    let labels = request.destination.labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
    let principal = request.source.principal.map { "\"principal\":\"\($0)\"," } ?? ""
    let tenant = request.request.headers["x-tenant"].map { ",\"headers\":{\"x-tenant\":\"\($0)\"}" } ?? ""
    return "{\"source\":{\(principal)\"ip\":\"10.0.0.5\",\"mtls\":\(request.source.mtls ?? false)},"
        + "\"destination\":{\"namespace\":\"\(request.destination.namespace!)\",\"labels\":{\(labels)},\"port\":8080},"
        + "\"request\":{\"method\":\"\(request.request.method!)\",\"path\":\"\(request.request.path!)\",\"host\":\"\(request.request.host!)\"\(tenant)}}"
}

if writePolicies != nil || writeWrk != nil || writeWrkCheck != nil || writeRequests != nil {
    var mesh = Mesh(policies: sizes[0])
    if let directory = writePolicies {
        mkdir(directory, 0o755)
        for file in mesh.policyFiles() { writeFile(directory + "/" + file.name, file.text) }
        print("wrote \(mesh.policyCount) AuthorizationPolicies in \(mesh.files.count) files to \(directory)")
    }
    let requests = mesh.requests(2000).filter { $0.source.principal != nil }
    if let path = writeWrk {
        let entries = requests.map { request -> String in
            let (method, target, headers) = extAuthz(request)
            let table = headers.map { "[\(lua($0.0))]=\(lua($0.1))" }.joined(separator: ",")
            return "{\(lua(method)),\(lua(target)),{\(table)},nil}"
        }
        writeFile(path, wrkScript(entries, "/ext_authz requests"))
        print("wrote \(entries.count) /ext_authz requests to \(path)")
    }
    if let path = writeWrkCheck {
        let entries = requests.map { "{\"POST\",\"/v1/check\",{[\"content-type\"]=\"application/json\"},\(lua(checkBody($0)))}" }
        writeFile(path, wrkScript(entries, "POST /v1/check requests"))
        print("wrote \(entries.count) /v1/check requests to \(path)")
    }
    if let path = writeRequests {
        // Tab-separated: method, target, then header name/value pairs (for the callgrind client).
        let lines = requests.map { request -> String in
            let (method, target, headers) = extAuthz(request)
            return ([method, target] + headers.flatMap { [$0.0, $0.1] }).joined(separator: "\t")
        }
        writeFile(path, lines.joined(separator: "\n") + "\n")
        print("wrote \(lines.count) requests to \(path)")
    }
    exit(0)
}

// MARK: Deterministic view

/// One decision, the unit callgrind counts: run with `--callgrind D` under
/// `valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*callgrindDecision*' ...` and divide the totals
/// by D. The request's bytes are read just before (outside), as in the timed samples.
@inline(never)
func callgrindDecision(_ matcher: CompiledPolicySet, _ request: CheckRequest) -> Bool {
    matcher.evaluate(request).allowed
}

/// The generated mesh at 10,000 policies also has its PeerAuthentications: more resources than `serve`'s
/// default limit (`--max-resources`), which guards against a runaway directory, not against this.
let benchLimits = LoadLimits(maxResources: 1_000_000)

if callgrindDecisions > 0 {
    var mesh = Mesh(policies: sizes[0])
    guard case .success(let set) = PolicyLoader.load(mesh.policyFiles(), limits: benchLimits) else { print("generated policies do not load"); exit(1) }
    let requests = mesh.requests(4096)
    let matcher = CompiledPolicySet(set, options: compileOptions)
    if pauseSeconds > 0 {
        // Loading 10,000 policies under the cache model takes minutes: run valgrind with
        // `--instr-atstart=no` and `callgrind_control -i on PID` during this pause.
        print("deciding in \(pauseSeconds) s (pid \(getpid()))")
        fflush(nil)
        sleep(pauseSeconds)
    }
    var allowed = 0, checksum = 0
    requests.withUnsafeBufferPointer { requests in
        for d in 0..<callgrindDecisions {
            checksum &+= warm(requests[d % requests.count])
            allowed += callgrindDecision(matcher, requests[d % requests.count]) ? 1 : 0
        }
    }
    print("\(callgrindDecisions) decisions at \(set.authorizationPolicies.count) policies, \(allowed) allowed (\(checksum & 1))")
    exit(0)
}

// MARK: Measuring

let overhead = timerOverhead()
print("timer overhead \(overhead) ns (subtracted from single-decision samples)")
for size in sizes {
    let rssStart = residentKiB()
    var mesh = Mesh(policies: size)
    let files = mesh.policyFiles()
    let loadStart = nanoseconds()
    let set: PolicySet
    switch PolicyLoader.load(files, limits: benchLimits) {
    case .success(let loaded): set = loaded
    case .failure(let failure):
        print("generated policies do not load: \(failure)")
        exit(1)
    }
    let loadMillis = Double(nanoseconds() - loadStart) / 1e6
    let rules = set.authorizationPolicies.reduce(0) { $0 + $1.rules.count }
    let requests = mesh.requests(4096)
    let rssLoaded = residentKiB()

    // Compile three times, keep the last; report the median time.
    var compileTimes: [UInt64] = []
    var compiled: CompiledPolicySet? = nil
    for _ in 0..<3 {
        compiled = nil
        let start = nanoseconds()
        compiled = CompiledPolicySet(set, options: compileOptions)
        compileTimes.append(nanoseconds() - start)
    }
    compileTimes.sort()
    let matcher = compiled!
    let rssCompiled = residentKiB()
    let reference = ReferenceEvaluator(set)

    // Agreement on the benchmark's own requests (the differential test is the real check).
    var disagreements = 0
    for request in requests.prefix(size >= 10000 ? 300 : 2000) where matcher.evaluate(request) != reference.evaluate(request) {
        disagreements += 1
    }
    let allowedShare = Double(requests.filter { matcher.evaluate($0).allowed }.count) / Double(requests.count)

    if pauseSeconds > 0 {
        print("measuring in \(pauseSeconds) s (pid \(getpid()))")
        fflush(nil)
        sleep(pauseSeconds)
    }
    let fast = measure(requests, budgetSeconds: seconds, maxSamples: 400_000, overhead: overhead) { matcher.evaluate($0) }
    let slow = onlyCompiled ? fast
        : measure(requests, budgetSeconds: seconds, maxSamples: 100_000, overhead: overhead) { reference.evaluate($0) }
    let stats = matcher.statistics
    let compileMillis = Double(compileTimes[1]) / 1e6
    print("""

        == \(set.authorizationPolicies.count) AuthorizationPolicies, \(rules) rules, \(set.peerAuthentications.count) PeerAuthentications
        load (YAML parse + validate) \(format(loadMillis)) ms; compile median of 3: \(format(compileMillis)) ms
        compiled: \(stats.scopes) scopes, \(stats.buckets) buckets (\(stats.indexedBuckets) with tries, \(stats.trieNodes) trie nodes), \(stats.programBytes / 1024) KiB of rule records, \(stats.hotBytes / 1024) KiB read by decisions
        RSS: start \(rssStart / 1024) MiB, policies loaded \(rssLoaded / 1024) MiB, + compiled \(rssCompiled / 1024) MiB
        requests: \(requests.count) distinct, \(format(allowedShare * 100, 0))% allowed; disagreements with the reference: \(disagreements)
        compiled:  median \(fast.median) ns, p99 \(fast.p99) ns, \(format(fast.perSecond / 1e6, 2)) M decisions/s (\(fast.samples) samples)
        reference: median \(slow.median) ns, p99 \(slow.p99) ns, \(format(slow.perSecond / 1e3, 1)) k decisions/s (\(slow.samples) samples)
        speed-up: median \(format(Double(slow.median) / Double(max(fast.median, 1)), 0))x, throughput \(format(fast.perSecond / slow.perSecond, 0))x
        """)
    print("ROW|\(set.authorizationPolicies.count)|\(rules)|\(format(loadMillis))|\(format(compileMillis))|\(rssLoaded / 1024)|\(rssCompiled / 1024)|\(fast.median)|\(fast.p99)|\(Int(fast.perSecond))|\(slow.median)|\(slow.p99)|\(Int(slow.perSecond))|\(disagreements)")
}
