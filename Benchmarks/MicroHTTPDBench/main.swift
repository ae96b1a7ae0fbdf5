import Foundation
import MicroHTTPD

#if canImport(Glibc)
import Glibc
#endif

/// Throughput of the Swift wrapper vs the C baseline (Benchmarks/baseline-c), measured with wrk: run by
/// Benchmarks/baseline-c/compare.sh, which pins this process (and so the daemon threads) to one CPU and
/// wrk to another. A benchmark, not a test: it prints figures and asserts nothing.
enum BenchError: Error { case noPort }

struct ThroughputBenchmark {
    let env = ProcessInfo.processInfo.environment
    var seconds: String { env["MICROHTTPD_BENCH_SECONDS"] ?? "5" }
    var connections: String { env["MICROHTTPD_BENCH_CONNECTIONS"] ?? "32" }
    var threads: Int { Int(env["MICROHTTPD_BENCH_THREADS"] ?? "1") ?? 1 }
    var serverCPU: String { env["MICROHTTPD_BENCH_SERVER_CPU"] ?? "0" }
    var clientCPU: String { env["MICROHTTPD_BENCH_CLIENT_CPU"] ?? "1" }

    func wrk(_ port: UInt16, path: String = "/") throws -> (rps: Double, text: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        p.arguments = ["-c", clientCPU, "wrk", "-t1", "-c\(connections)", "-d\(seconds)s", "--latency",
                       "http://127.0.0.1:\(port)\(path)"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") } ?? ""
        let rps = Double(line.split(separator: " ").last ?? "") ?? 0
        return (rps, text)
    }

    func swiftRun(handler: @escaping HTTPServer.Handler) throws -> (Double, String) {
        let server = HTTPServer(configuration: HTTPServerConfiguration(threadPoolSize: threads), handler: handler)
        try server.start()
        defer { server.stop() }
        return try wrk(server.boundPort, path: "/api/users?x=1")
    }

    func cRun() throws -> (Double, String) {
        let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../out/baseline").standardized.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        p.arguments = ["-c", serverCPU, binary, "0", "\(threads)"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        defer {
            p.terminate()
            p.waitUntilExit()
        }
        var line = Data()
        while !line.contains(10) {
            let d = pipe.fileHandleForReading.availableData
            if d.isEmpty { break }
            line.append(d)
        }
        let port = UInt16(String(decoding: line, as: UTF8.self).split(separator: ":").last?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        guard port != 0 else { throw BenchError.noPort }
        return try wrk(port, path: "/api/users?x=1")
    }

    func compareWithCBaseline() throws {
        let empty: HTTPServer.Handler = { _ in HTTPResponse(status: 200) }
        let small: HTTPServer.Handler = { request in
            _ = request.header("x-forwarded-client-cert")
            return .json(#"{"allowed":true,"decision":"ALLOW"}"#)
        }
        let rounds = Int(env["MICROHTTPD_BENCH_ROUNDS"] ?? "3") ?? 3
        let names = ["C baseline (empty 200)", "Swift wrapper (empty 200)",
                     "Swift wrapper (header lookup + JSON body)"]
        var samples: [[Double]] = [[], [], []]
        // Alternate the servers so that background load hits them alike.
        for round in 1...rounds {
            let (c, cText) = try cRun()
            let (s, sText) = try swiftRun(handler: empty)
            let (j, jText) = try swiftRun(handler: small)
            samples[0].append(c)
            samples[1].append(s)
            samples[2].append(j)
            if round == rounds {
                print("--- \(names[0]) ---\n\(cText)\n--- \(names[1]) ---\n\(sText)\n--- \(names[2]) ---\n\(jText)")
            }
        }
        print("wrk -t1 -c\(connections) -d\(seconds)s x \(rounds) rounds, server on CPU \(serverCPU) "
              + "(pool \(threads)), wrk on CPU \(clientCPU)")
        print("server".padding(toLength: 45, withPad: " ", startingAt: 0) + "      best    median  (req/s)")
        for (name, values) in zip(names, samples) {
            let sorted = values.sorted()
            print(name.padding(toLength: 45, withPad: " ", startingAt: 0)
                  + String(format: "%10.0f%10.0f", sorted.last ?? 0, sorted[sorted.count / 2]))
        }
    }
}

try ThroughputBenchmark().compareWithCBaseline()
