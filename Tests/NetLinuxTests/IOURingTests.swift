import NetLinux
import Testing

/// The io_uring wrapper against a pipe: multishot reads into provided buffers, queued
/// writes, and what happens when every buffer is in use.
@Suite struct IOURingTests {
    struct Completion { var userData: UInt64; var result: Int32; var flags: UInt32 }

    final class Pipe {
        let read: Int32
        let write: Int32
        init() {
            var fds: [Int32] = [0, 0]
            precondition(pipe(&fds) == 0)
            (read, write) = (fds[0], fds[1])
            _ = fcntl(read, F_SETFL, O_NONBLOCK)
        }
        deinit { close(read); close(write) }
    }

    static let bufferSize = 64
    final class Buffers {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 4 * IOURingTests.bufferSize, alignment: 64)
        deinit { memory.deallocate() }
    }
    let buffers = Buffers()

    func buffer(_ id: Int) -> UnsafeMutableRawPointer { buffers.memory + id * IOURingTests.bufferSize }

    func wait(_ ring: borrowing IOURing) -> [Completion] {
        ring.submit(wait: true, timeoutNanoseconds: 1_000_000_000)
        var out: [Completion] = []
        _ = ring.completions(limit: 16) { out.append(Completion(userData: $0, result: $1, flags: $2)) }
        return out
    }

    /// A ring with two provided buffers and a multishot read armed on the pipe.
    func reading(_ p: Pipe, userData: UInt64) throws -> IOURing {
        let ring = try IOURing(entries: 16, bufferGroups: 1, buffersPerGroup: 2)
        for id in 0..<2 { ring.provide(group: 0, buffer(id), length: IOURingTests.bufferSize, id: id) }
        ring.publish(group: 0)
        ring.readMultishot(fd: p.read, group: 0, userData: userData)
        return ring
    }

    func send(_ p: Pipe, _ text: String) {
        var bytes = Array(text.utf8)
        #expect(Glibc.write(p.write, &bytes, bytes.count) == bytes.count)
    }

    func text(_ c: Completion) -> String {
        let id = Int(c.flags >> IOURingCompletion.bufferShift)
        return String(decoding: UnsafeRawBufferPointer(start: buffer(id), count: Int(c.result)), as: UTF8.self)
    }

    @Test func multishotReadFillsProvidedBuffersUntilTheyRunOut() throws {
        let p = Pipe()
        let ring = try reading(p, userData: 7)

        send(p, "first")
        let a = wait(ring)
        #expect(a.count == 1)
        #expect(a[0].userData == 7 && a[0].result == 5)
        #expect(a[0].flags & IOURingCompletion.hasBuffer != 0)
        #expect(a[0].flags & IOURingCompletion.more != 0, "the read stays armed")
        #expect(text(a[0]) == "first")

        send(p, "second")
        let b = wait(ring)
        #expect(b.count == 1 && text(b[0]) == "second")
        #expect(b[0].flags >> IOURingCompletion.bufferShift != a[0].flags >> IOURingCompletion.bufferShift)

        // Both buffers are still held: the next frame ends the multishot with ENOBUFS and
        // stays in the pipe until a buffer comes back and the read is armed again.
        send(p, "third")
        let c = wait(ring)
        #expect(c.count == 1 && c[0].result == -ENOBUFS)
        #expect(c[0].flags & IOURingCompletion.more == 0)
        let id = Int(a[0].flags >> IOURingCompletion.bufferShift)
        ring.provide(group: 0, buffer(id), length: IOURingTests.bufferSize, id: id)
        ring.publish(group: 0)
        ring.readMultishot(fd: p.read, group: 0, userData: 8)
        let d = wait(ring)
        #expect(d.count == 1 && d[0].userData == 8 && text(d[0]) == "third")
    }

    @Test func queuedWritesGoOutWithTheSubmission() throws {
        let ring = try IOURing(entries: 16, bufferGroups: 0, buffersPerGroup: 1)
        let p = Pipe()
        var frame = Array("frame".utf8)
        frame.withUnsafeBytes { ring.write(fd: p.write, $0.baseAddress!, length: $0.count, userData: 42) }
        var got = [UInt8](repeating: 0, count: 16)
        #expect(Glibc.read(p.read, &got, 16) == -1 && errno == EAGAIN, "nothing is written before the submission")
        let c = wait(ring)
        #expect(c.count == 1 && c[0].userData == 42 && c[0].result == 5)
        #expect(Glibc.read(p.read, &got, 16) == 5)
        #expect(Array(got[0..<5]) == frame)
    }

    @Test func cancellingAnFDEndsItsRead() throws {
        let p = Pipe()
        let ring = try reading(p, userData: 9)
        ring.submit(wait: false, timeoutNanoseconds: 0)
        try ring.cancel(fd: p.read)
        let c = wait(ring)
        #expect(c.count == 1 && c[0].userData == 9 && c[0].result == -ECANCELED)
        #expect(c[0].flags & IOURingCompletion.more == 0)
        try ring.cancel(fd: p.read)  // nothing outstanding: not an error
    }
}
