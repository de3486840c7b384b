import CLibBPF
import ESwitch
import Glibc

/// A user's BPF object loaded to run in the NIC's programmable stage (bpf/prog_stage.h):
/// one tc program from it, with its `esw_pipeline` map made the data plane's own, so
/// that its verdicts tail-call back into the pipeline. Closed when this goes (the prog
/// array entry holds its own reference to the program).
final class UserProgramObject {
    private let object: OpaquePointer
    let fd: Int32
    let program: PortProgram

    /// Loads the program `section` names (a section, or a program's function name; nil:
    /// the first program) of the object at `path`. Whatever the
    /// NIC cannot run is refused with its reason, or the verifier's last lines.
    init(path: String, section: String?, pipelineMapFD: Int32) throws(DataPlaneError) {
        libbpf_set_print(nil)
        // Only a regular file: libbpf would block the control thread on a FIFO's open
        // until a writer came, and read a device or directory for nothing.
        var st = stat()
        guard stat(path, &st) == 0 else { throw .programRefused("\(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw .programRefused("\(path): not a regular file (a BPF object file is one)")
        }
        errno = 0
        guard let obj = bpf_object__open_file(path, nil), libbpf_get_error(UnsafeRawPointer(obj)) == 0 else {
            throw .programRefused("\(path): \(Self.libbpfError(errno == 0 ? EINVAL : errno)) (not a BPF object file?)")
        }
        var programs: [(program: OpaquePointer, section: String, name: String)] = []
        var p = bpf_object__next_program(obj, nil)
        while let prog = p {
            programs.append((prog, String(cString: bpf_program__section_name(prog)), String(cString: bpf_program__name(prog))))
            p = bpf_object__next_program(obj, prog)
        }
        let chosen: OpaquePointer
        switch Self.choose(section, among: programs.map { ($0.section, $0.name) }) {
        case .success(let i):
            chosen = programs[i].program
        case .failure(let refusal):
            bpf_object__close(obj)
            throw .programRefused("\(path): \(refusal.reason)")
        }
        let prog = chosen
        // Only the chosen program is loaded; one with no type of its own (a section name
        // libbpf does not know, as ip-link's "sec NAME" allows) is a tc program.
        var q = bpf_object__next_program(obj, nil)
        while let other = q {
            if other != prog { _ = bpf_program__set_autoload(other, false) }
            q = bpf_object__next_program(obj, other)
        }
        let type = bpf_program__type(prog)
        if type == BPF_PROG_TYPE_UNSPEC {
            _ = bpf_program__set_type(prog, BPF_PROG_TYPE_SCHED_CLS)
        } else if type != BPF_PROG_TYPE_SCHED_CLS {
            // The name lives in the object: read before the object is closed.
            let name = String(cString: bpf_program__section_name(prog))
            bpf_object__close(obj)
            throw .programRefused("section \(name) is not a tc (SCHED_CLS) program: the NIC runs tc programs only")
        }
        guard let pipeline = bpf_object__find_map_by_name(obj, "esw_pipeline") else {
            bpf_object__close(obj)
            throw .programRefused("no esw_pipeline map: the program cannot hand its verdict back to the NIC (include bpf/examples/esw_prog.h and end with esw_pass/esw_drop/esw_tx/esw_redirect)")
        }
        let reused = bpf_map__reuse_fd(pipeline, pipelineMapFD)
        if reused < 0 {
            bpf_object__close(obj)
            throw .programRefused("esw_pipeline: \(String(cString: strerror(-reused))) (declare it as bpf/examples/esw_prog.h does)")
        }
        let logSize = 1 << 20
        let log = UnsafeMutablePointer<CChar>.allocate(capacity: logSize)
        defer { log.deallocate() }
        log[0] = 0
        _ = bpf_program__set_log_buf(prog, log, logSize)
        let err = bpf_object__load(obj)
        if err < 0 {
            bpf_object__close(obj)
            let lines = String(cString: log).split(separator: "\n").suffix(6).joined(separator: "\n")
            throw .programRefused(lines.isEmpty ? "loading \(path): \(Self.libbpfError(-err))" : "verifier: \(lines)")
        }
        object = obj
        fd = bpf_program__fd(prog)
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        let id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0
        program = PortProgram(objectPath: path, section: String(cString: bpf_program__section_name(prog)),
                              name: String(cString: bpf_program__name(prog)), id: id)
    }

    deinit { bpf_object__close(object) }

    struct Refusal: Error { let reason: String }

    /// Which of an object's programs (section, function name) `sec NAME` means: the one
    /// program in section NAME, else the program whose function is NAME; nil: the first.
    /// A section that holds several programs is ambiguous (picking the first silently
    /// ran a program the user may not have meant): refused, naming them.
    static func choose(_ wanted: String?, among programs: [(section: String, name: String)]) -> Result<Int, Refusal> {
        guard !programs.isEmpty else { return .failure(Refusal(reason: "no programs")) }
        guard let wanted else { return .success(0) }
        let inSection = programs.indices.filter { programs[$0].section == wanted }
        if inSection.count > 1 {
            let names = inSection.map { programs[$0].name }.joined(separator: ", ")
            return .failure(Refusal(reason: "section \"\(wanted)\" holds \(inSection.count) programs (\(names)): name one by its function, e.g. sec \(programs[inSection[0]].name)"))
        }
        if let i = inSection.first ?? programs.indices.first(where: { programs[$0].name == wanted }) { return .success(i) }
        let all = programs.map { "\($0.section) (\($0.name))" }.joined(separator: ", ")
        return .failure(Refusal(reason: "no section \"\(wanted)\", nor a program of that name (its programs: \(all))"))
    }

    /// libbpf's own codes (LIBBPF_ERRNO__*, 4000 and up) have their texts in libbpf.
    private static func libbpfError(_ code: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 128)
        guard libbpf_strerror(code, &buf, buf.count) == 0 else { return String(cString: strerror(code)) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
