#if canImport(Glibc)
import Glibc
#endif

/// How a sign-in URL reaches a person: `$BROWSER` (Python `webbrowser`'s convention: commands
/// separated by `:`, `%s` replaced by the URL, else the URL appended), else `xdg-open`, else the
/// URL printed on stderr. Commands run without a shell; their output goes to stderr so that a
/// `fastmcpauth token` on stdout stays clean.
public enum BrowserCommands {
    /// The argument vectors of a `$BROWSER` value, in order; empty entries skipped. Words split on
    /// blanks with single quotes, double quotes and backslash escapes (a shell's basics, no expansion).
    public static func parse(_ value: String) -> [[String]] {
        value.split(separator: ":", omittingEmptySubsequences: true).compactMap { entry in
            let words = split(String(entry))
            return words.isEmpty ? nil : words
        }
    }

    /// `command` with `%s` replaced by the URL in every word that has it, else the URL appended.
    public static func arguments(_ command: [String], url: String) -> [String] {
        guard command.contains(where: { $0.contains("%s") }) else { return command + [url] }
        return command.map { $0.replacingAll("%s", with: url) }
    }

    static func split(_ text: String) -> [String] {
        var words = [String]()
        var current = [UInt8]()
        var inWord = false
        var quote: UInt8? = nil
        var escaped = false
        for byte in text.utf8 {
            if escaped {
                current.append(byte)
                escaped = false
                continue
            }
            if let open = quote {
                if byte == open {
                    quote = nil
                } else if byte == 0x5C && open == 0x22 {
                    escaped = true
                } else {
                    current.append(byte)
                }
                continue
            }
            switch byte {
            case 0x20, 0x09, 0x0A:
                if inWord { words.append(String(decoding: current, as: UTF8.self)) }
                current = []
                inWord = false
            case 0x27, 0x22:
                quote = byte
                inWord = true
            case 0x5C:
                escaped = true
                inWord = true
            default:
                current.append(byte)
                inWord = true
            }
        }
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        return words
    }
}

extension String {
    /// Every occurrence of `target` replaced, left to right (no Foundation in the core).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        let source = Array(utf8)
        let pattern = Array(target.utf8)
        guard !pattern.isEmpty, source.count >= pattern.count else { return self }
        var out = [UInt8]()
        var index = 0
        while index < source.count {
            if index + pattern.count <= source.count && Array(source[index..<(index + pattern.count)]) == pattern {
                out += replacement.utf8
                index += pattern.count
            } else {
                out.append(source[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A browser command started for one sign-in: polled while the listener waits, so a command that
/// exits non-zero ends the wait with browser_unavailable at once.
// @unchecked: the pid is written once at spawn and then only read and reaped by the waiting thread.
final class BrowserProcess: @unchecked Sendable {
    private var pid: pid_t
    private(set) var exitStatus: Int32?

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `arguments` (found through PATH), stdout sent to stderr; nil when it cannot start.
    static func spawn(_ arguments: [String]) -> BrowserProcess? {
        guard let program = arguments.first, !program.isEmpty else { return nil }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, 2, 1)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var pid: pid_t = 0
        guard posix_spawnp(&pid, program, &actions, nil, &argv, environ) == 0 else { return nil }
        return BrowserProcess(pid: pid)
    }

    /// Reaps the process if it has exited; the exit status, or nil while it runs.
    func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        // WIFEXITED/WEXITSTATUS by hand (macros are not imported): low 7 bits zero means exited.
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        exitStatus = code
        return code
    }

    /// Whether the command has failed (exited non-zero); a command still running or that exited 0
    /// has handed the URL on.
    var failed: Bool { (poll() ?? 0) != 0 }

    deinit {
        // A browser command that outlives the sign-in is left to run; reap it if it is done.
        _ = poll()
    }
}

/// Opens the sign-in URL the configured way and says how the wait must watch it.
enum BrowserOpener {
    /// `$BROWSER`'s commands, else `xdg-open` when it is on PATH, else none (print the URL).
    static func defaultCommands(environment: [String: String]) -> [[String]] {
        if let value = environment["BROWSER"], !BrowserCommands.parse(value).isEmpty {
            return BrowserCommands.parse(value)
        }
        return findOnPath("xdg-open", path: environment["PATH"]).map { [[$0]] } ?? []
    }

    static func findOnPath(_ program: String, path: String?) -> String? {
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = directory + "/" + program
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Starts the first command that can be started (the wait then watches it: a non-zero exit is
    /// browser_unavailable). With no command, or `noBrowser`, the URL goes to stderr, which must be
    /// a terminal when `noBrowser` is set; otherwise nobody could see it, and the call fails at once.
    static func open(
        _ url: String,
        commands: [[String]],
        noBrowser: Bool,
        stderrIsTerminal: Bool,
        printURL: (String) -> Void
    ) throws -> BrowserProcess? {
        if noBrowser {
            guard stderrIsTerminal else {
                throw AuthError(
                    .browserUnavailable,
                    "no browser was to be opened and stderr is not a terminal to show the URL"
                )
            }
            printURL(url)
            return nil
        }
        for command in commands {
            if let process = BrowserProcess.spawn(BrowserCommands.arguments(command, url: url)) { return process }
        }
        if !commands.isEmpty {
            throw AuthError(.browserUnavailable, "none of the browser commands could be started")
        }
        printURL(url)
        return nil
    }
}
