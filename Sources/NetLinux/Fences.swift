import Synchronization

// Memory fences around ring status words shared with the kernel.
@inline(__always) func atomicThreadFenceAcquire() { atomicMemoryFence(ordering: .acquiring) }
@inline(__always) func atomicThreadFenceRelease() { atomicMemoryFence(ordering: .releasing) }
