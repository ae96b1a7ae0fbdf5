#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The standard `process_*` metrics of Prometheus client libraries, read from `/proc` when `/metrics` is
/// scraped (never on a decision): CPU seconds, resident and virtual memory, open and maximum file descriptors,
/// start time. Where `/proc` is missing (not Linux) a family is left out rather than reported as 0.
enum ProcessMetrics {
    static func render(into out: inout String) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let stat = selfStat(), ticks > 0 {
            out += "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            out += "# TYPE process_cpu_seconds_total counter\n"
            out += "process_cpu_seconds_total \(format((stat.utime + stat.stime) / ticks))\n"
            out += "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
            out += "# TYPE process_virtual_memory_bytes gauge\n"
            out += "process_virtual_memory_bytes \(format(stat.vsize))\n"
            out += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            out += "# TYPE process_resident_memory_bytes gauge\n"
            out += "process_resident_memory_bytes \(format(stat.rssPages * page))\n"
            if let boot = bootTime() {
                out += "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                out += "# TYPE process_start_time_seconds gauge\n"
                out += "process_start_time_seconds \(format(boot + stat.startTicks / ticks))\n"
            }
        }
        if let open = openDescriptors() {
            out += "# HELP process_open_fds Number of open file descriptors.\n"
            out += "# TYPE process_open_fds gauge\n"
            out += "process_open_fds \(open)\n"
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            out += "# HELP process_max_fds Maximum number of open file descriptors.\n"
            out += "# TYPE process_max_fds gauge\n"
            out += "process_max_fds \(limit.rlim_cur)\n"
        }
    }

    struct Stat {
        var utime: Double, stime: Double, startTicks: Double, vsize: Double, rssPages: Double
    }

    /// `/proc/self/stat`: fields after the command name (which may hold spaces and parentheses, so the text is
    /// cut at the last `)`).
    static func selfStat() -> Stat? {
        guard let text = read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
              let rss = field(24) else { return nil }
        return Stat(utime: utime, stime: stime, startTicks: start, vsize: vsize, rssPages: rss)
    }

    /// `btime` of `/proc/stat`: boot time, seconds since the epoch.
    static func bootTime() -> Double? {
        guard let text = read("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count))
        }
        return nil
    }

    static func openDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count - 1  // the directory stream's own descriptor
    }

    static func read(_ path: String) -> String? {
        guard case .success(let bytes) = readAll(path: path, maxBytes: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Seconds and bytes as Prometheus reads them; integral values without a fraction.
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
