// Two peers in one JVM, on 127.0.0.1, through the generated Kotlin bindings: pairing,
// replication, events, stale and applied edits, errors with kinds.
package dev.leanspec.peer.tests

import dev.leanspec.peer.*
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.*
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import java.io.File
import java.nio.file.Files
import java.security.MessageDigest
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

const val WAIT_MS = 30_000L

/**
 * Writes a spec as editors save: a temp file renamed over it. (A plain rewrite lets the
 * watcher read the file half-written, and the awaited event can name that state; the
 * Python suite had the same flake.)
 */
fun writeSpec(root: File, name: String, status: String, priority: String = "high"): File {
    val dir = File(root, "specs/$name")
    dir.mkdirs()
    val f = File(dir, "README.md")
    val tmp = File(dir, ".README.md.tmp")
    tmp.writeText("---\nstatus: $status\ncreated: '2025-01-01'\npriority: $priority\n---\n\n# $name\n")
    java.nio.file.Files.move(
        tmp.toPath(),
        f.toPath(),
        java.nio.file.StandardCopyOption.ATOMIC_MOVE,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING,
    )
    return f
}

fun sha256(b: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }

/** Re-checks `cond` every 20 ms, bounded by WAIT_MS. */
fun eventually(what: String, cond: () -> Boolean) {
    val deadline = System.currentTimeMillis() + WAIT_MS
    while (!cond()) {
        if (System.currentTimeMillis() > deadline) fail<Unit>("$what: not within $WAIT_MS ms")
        Thread.sleep(20)
    }
}

class Collector : EventListener {
    val events = LinkedBlockingQueue<PeerEvent>()
    override fun onEvent(event: PeerEvent) { events.put(event) }

    fun waitFor(what: String, pred: (PeerEvent) -> Boolean): PeerEvent {
        val deadline = System.currentTimeMillis() + WAIT_MS
        val seen = mutableListOf<PeerEvent>()
        while (true) {
            val left = deadline - System.currentTimeMillis()
            if (left <= 0) fail<Unit>("no event $what within $WAIT_MS ms; saw $seen")
            val ev = events.poll(left, TimeUnit.MILLISECONDS) ?: continue
            seen.add(ev)
            if (pred(ev)) return ev
        }
    }
}

class PeerTest {
    private lateinit var tmp: File
    private lateinit var a: Peer
    private lateinit var b: Peer
    private lateinit var projB: File
    private val events = Collector()
    private var sub: Subscription? = null

    @BeforeEach
    fun pair() {
        tmp = Files.createTempDirectory("lsp-kotlin").toFile()
        val projA = File(tmp, "proj-alpha")
        projB = File(tmp, "proj-beta")
        writeSpec(projA, "001-alpha", "planned")
        writeSpec(projB, "001-beta", "planned")
        a = Peer.open(File(tmp, "home-alpha").path, PeerConfig(label = "alpha", bind = "127.0.0.1:0"))
        b = Peer.open(File(tmp, "home-beta").path, PeerConfig(label = "beta", bind = "127.0.0.1:0"))
        a.addProject(projA.path, null)
        b.addProject(projB.path, null)
        runBlocking {
            a.start()
            b.start()
            val joined = a.join(b.invite(600UL, false).ticket)
            assertEquals(b.machineId(), joined.inviter)
            assertEquals(2UL, joined.members)
        }
        sub = a.subscribe(events)
    }

    @AfterEach
    fun close() {
        sub?.cancel()
        runBlocking { a.stop(); b.stop() }
        a.close()
        b.close()
        tmp.deleteRecursively()
    }

    @Test
    fun eachSeesTheOthersSpecsAndEventsFollowFileEdits() {
        eventually("A lists B's spec") { a.specs(SpecQuery(machine = "beta")).size == 1 }
        eventually("B lists A's spec") { b.specs(SpecQuery(machine = "alpha")).size == 1 }
        val row = a.specs(SpecQuery(machine = "beta"))[0]
        assertEquals("001-beta", row.name)
        assertEquals("planned", row.status)

        writeSpec(projB, "001-beta", "in-progress")
        val bId = b.machineId()
        val ev = events.waitFor("spec changed on B") {
            it is PeerEvent.SpecChanged && it.machine == bId && it.spec == "001-beta" && "status" in it.fields
        } as PeerEvent.SpecChanged
        assertEquals("in-progress", a.spec("beta", ev.project, "001-beta").status)
        val machines = a.machines().associateBy { it.label }
        assertTrue(machines.getValue("alpha").isSelf)
        assertTrue(machines.getValue("beta").online)

        b.rename("beta", "beta-desk")
        events.waitFor("B renamed") {
            it is PeerEvent.MachineRenamed && it.machine == bId && it.label == "beta-desk"
        }
        assertTrue(a.machines().any { it.label == "beta-desk" })
    }

    @Test
    fun staleEditIsRejectedWithTheCurrentHashAndAGoodEditApplies() {
        eventually("A lists B's spec") { a.specs(SpecQuery(machine = "beta")).size == 1 }
        val seen = a.specs(SpecQuery(machine = "beta"))[0]
        val readme = writeSpec(projB, "001-beta", "planned", priority = "low")
        val onDisk = readme.readBytes()

        val stale = runBlocking {
            a.edit("beta", seen.projectId, "001-beta", SpecChange(status = "complete"), seen.fileHash)
        }
        assertEquals(Outcome.REJECTED, stale.outcome)
        assertEquals("stale", stale.reason)
        assertEquals(sha256(onDisk), stale.currentFileHash)
        assertArrayEquals(onDisk, readme.readBytes(), "a rejected edit must not touch the file")

        val good = runBlocking {
            a.edit(
                "beta", seen.projectId, "001-beta",
                SpecChange(status = "in-progress", addTags = listOf("from-kotlin")),
                stale.currentFileHash,
            )
        }
        assertEquals(Outcome.APPLIED, good.outcome, good.message)
        val after = readme.readText()
        assertTrue(after.contains("status: in-progress") && after.contains("from-kotlin"), after)
        assertEquals(sha256(readme.readBytes()), good.fileHash)
        assertTrue(a.audit(10U).any { it.opId == good.opId && it.direction == "sent" })
        assertTrue(b.audit(10U).any { it.opId == good.opId && it.direction == "received" })
    }

    @Test
    fun errorsArriveAsExceptionsWithKinds() {
        val e1 = assertThrows(PeerException.Failed::class.java) { a.spec("alpha", "no-such-project", "001") }
        assertEquals(ErrorKind.NOT_FOUND, e1.kind)
        assertTrue(e1.detail.contains("no-such-project"))
        val e2 = assertThrows(PeerException.Failed::class.java) { a.specs(SpecQuery(status = "nearly-done")) }
        assertEquals(ErrorKind.INVALID_ARGUMENT, e2.kind)
        val e3 = assertThrows(PeerException.Failed::class.java) { runBlocking { a.join("not-a-ticket") } }
        assertEquals(ErrorKind.TICKET, e3.kind)
        val e4 = assertThrows(PeerException.Failed::class.java) {
            Peer.open(File(tmp, "home-alpha").path, PeerConfig())
        }
        assertEquals(ErrorKind.STORE, e4.kind)
    }
}
