import Foundation
import Synchronization
import Testing
import MicroHTTPD

/// The byte-level request accessors and the response cache, through a real server.
@Suite struct ResponseCacheTests {
    @Test func headerFieldsAreTheHeadersAsSentInOrder() throws {
        let seen = LockedBox<[String]>([])
        try withServer(handler: { request in
            let lines = request.withHeaderFields { fields in
                fields.map { String(decoding: $0.name, as: UTF8.self) + "=" + String(decoding: $0.value, as: UTF8.self) }
            }
            seen.set(lines)
            return HTTPResponse(status: 204)
        }) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            _ = try client.request("GET", "/", headers: [("X-Tenant", "acme"), ("x-empty", ""), ("X-Tenant", "two")])
            let lines = seen.get()
            #expect(lines.contains("X-Tenant=acme"))
            #expect(lines.contains("x-empty="))
            let tenants = lines.filter { $0.hasPrefix("X-Tenant=") }
            #expect(tenants == ["X-Tenant=acme", "X-Tenant=two"])
            #expect(lines.contains { $0.hasPrefix("Host=") })
        }
    }

    @Test func peerIPIsLoopbackAsBytes() throws {
        let seen = LockedBox<PeerIP?>(nil)
        try withServer(handler: { request in
            seen.set(request.peerIP)
            return HTTPResponse(status: 204)
        }) { server in
            _ = try RawHTTPClient(port: server.boundPort).request("GET", "/")
            // 127.0.0.1 as ::ffff:127.0.0.1.
            let ip = seen.get()
            #expect(ip?.high == 0 && ip?.low == 0x0000_FFFF_7F00_0001 && ip?.isV4 == true)
        }
    }

    @Test func cachedAnswersAreBuiltOnceAndServedAlike() throws {
        let builds = LockedBox<[Int]>([])
        let cache = LockedBox(ResponseCache(capacity: 2))
        try withServer(handler: { request in
            let slot = request.rawPath == "/deny" ? 1 : 0
            let response = cache.get().response(slot) {
                builds.update { $0.append(slot) }
                return HTTPResponse(status: slot == 0 ? 200 : 403, headers: [("x-slot", "\(slot)")], body: "slot \(slot)")
            }
            #expect(response.isPrepared)
            return response
        }) { server in
            let first = try RawHTTPClient(port: server.boundPort)
            let second = try RawHTTPClient(port: server.boundPort)
            for client in [first, second, first, second] {
                let allow = try client.request("GET", "/allow")
                #expect(allow.status == 200 && allow.header("x-slot") == "0" && allow.bodyText == "slot 0")
                let deny = try client.request("GET", "/deny")
                #expect(deny.status == 403 && deny.header("x-slot") == "1" && deny.bodyText == "slot 1")
            }
            #expect(builds.get().sorted() == [0, 1])
            // A new cache (a reloaded policy set) replaces the old one; the old one's responses are freed
            // when it goes, and the same connections are served from the new one.
            cache.set(ResponseCache(capacity: 2))
            let again = try first.request("GET", "/deny")
            #expect(again.status == 403 && again.bodyText == "slot 1")
            #expect(builds.get().sorted() == [0, 1, 1])
        }
    }

    @Test func aFullCacheStillAnswersWithoutKeeping() throws {
        let cache = ResponseCache(capacity: 8, maxEntries: 2)
        try withServer(handler: { request in
            let slot = Int(request.rawPath.dropFirst()) ?? 0
            return cache.response(slot) { HTTPResponse(status: 200, headers: [("x-slot", "\(slot)")], body: "slot \(slot)") }
        }) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            for round in 0..<2 {
                for slot in 0..<8 {
                    let r = try client.request("GET", "/\(slot)")
                    #expect(r.status == 200 && r.header("x-slot") == "\(slot)" && r.bodyText == "slot \(slot)", "round \(round)")
                }
            }
            #expect(cache.count == 2)
        }
    }

    /// Keys get slots as they come, each key its own answer; past the capacity, answers are built per request.
    @Test func keyedAnswersAreBuiltOncePerKeyUpToTheCapacity() throws {
        let cache = KeyedResponseCache<[UInt32]>(capacity: 2)
        let builds = LockedBox<[String]>([])
        try withServer(handler: { request in
            let path = String(request.rawPath)
            let key = path.dropFirst().split(separator: ",").compactMap { UInt32($0) }
            return cache.response(key) {
                builds.update { $0.append(path) }
                return HTTPResponse(status: 200, headers: [("x-key", path)], body: path)
            }
        }) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            for round in 0..<3 {
                for path in ["/1,2", "/2", "/1,2,3"] {
                    let r = try client.request("GET", path)
                    #expect(r.status == 200 && r.header("x-key") == path && r.bodyText == path, "round \(round)")
                }
            }
            #expect(cache.count == 2)
            // The first two keys were built once; the third, past the capacity, on every request.
            #expect(builds.get().sorted() == ["/1,2", "/1,2,3", "/1,2,3", "/1,2,3", "/2"])
        }
    }

    /// Threads racing to fill one slot (each with its own status) keep one response, and every cached answer
    /// carries the status of the response it queues (under ThreadSanitizer: without a data race). Real threads
    /// released together by a spin barrier, many rounds, so that the fills overlap even on two cores.
    @Test func racingFillsKeepOneResponseWithItsStatus() throws {
        let racers = 4
        for round in 0..<50 {
            let cache = ResponseCache(capacity: 1)
            let answered = LockedBox<[Int]>([])
            let arrived = Atomic<Int>(0)
            let group = DispatchGroup()
            for i in 0..<racers {
                group.enter()
                Thread {
                    arrived.add(1, ordering: .relaxed)
                    while arrived.load(ordering: .relaxed) < racers { sched_yield() }
                    let response = cache.response(0) {
                        HTTPResponse(status: 200 + i, headers: [("x-status", "\(200 + i)")], body: "racer \(i)")
                    }
                    if response.isPrepared { answered.update { $0.append(response.status) } }
                    group.leave()
                }.start()
            }
            group.wait()
            #expect(cache.count == 1, "round \(round)")
            let kept = cache.response(0) { HTTPResponse(status: 500, body: "not cached") }
            #expect(kept.isPrepared && answered.get().allSatisfy { $0 == kept.status }, "round \(round)")
            guard round == 0 else { continue }
            try withServer(handler: { _ in cache.response(0) { HTTPResponse(status: 500, body: "not cached") } }) { server in
                let served = try RawHTTPClient(port: server.boundPort).request("GET", "/")
                // The status sent is the one stored with the response, whose header names the same status.
                #expect(served.header("x-status") == "\(served.status)" && served.status == kept.status)
            }
        }
    }
}

@Suite struct SignalDispositionTests {
    /// A client that closes early must not kill the process with SIGPIPE.
    @Test func runningServerIgnoresSIGPIPE() throws {
        try withServer(handler: { _ in HTTPResponse(status: 204) }) { _ in
            var action = sigaction()
            sigaction(SIGPIPE, nil, &action)
            let ignored = unsafeBitCast(SIG_IGN, to: Int.self)
            #expect(unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) == ignored)
        }
    }
}
