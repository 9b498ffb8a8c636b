using System.Buffers.Binary;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>Thousands of random and mutated frames: the server never crashes, every reply is well formed.</summary>
public sealed class FuzzTests
{
    [TestCase(1234, 1)]
    [TestCase(98765, 3)]
    public void Random_and_mutated_frames_never_break_the_server(int seed, int readers)
    {
        var random = new Random(seed);
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs, new ProtocolServerOptions { ReaderThreads = readers });
        kernel.Init();
        FuseOpcode[] opcodes = Enum.GetValues<FuseOpcode>();
        var sent = new HashSet<ulong>();
        for (int i = 0; i < 4000; i++)
        {
            byte[] frame = (i % 3) switch
            {
                0 => RandomBytes(random, random.Next(0, 400)),
                1 => Mutate(random, Plausible(random, opcodes)),
                _ => Plausible(random, opcodes),
            };
            if (frame.Length >= 16)
            {
                sent.Add(BinaryPrimitives.ReadUInt64LittleEndian(frame.AsSpan(8)));
            }

            kernel.SendRaw(frame);
        }

        FuseReply statfs = kernel.Call(FuseOpcode.StatFs, 1);
        Assert.That(statfs.As<FuseStatfsOut>().St.Blocks, Is.EqualTo(1000UL));
        FuseReply lookup = kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("still-alive"));
        Assert.That(lookup.As<FuseEntryOut>().NodeId, Is.EqualTo(RecordingFileSystem.LookupNode));
        Assert.That(kernel.Server.Completion.IsCompleted, Is.False, "the server is still running");

        IReadOnlyList<WrittenFrame> replies = kernel.Transport.Replies;
        Assert.That(replies, Has.Count.GreaterThan(1000));
        foreach (WrittenFrame w in replies)
        {
            var reply = new FuseReply(w);
            Assert.That(reply.Header.Len, Is.EqualTo((uint)w.Bytes.Length), "out_header.len is the bytes written");
            Assert.That(reply.Header.Error, Is.InRange(-511, 0), "error is 0 or -errno within (-512, 0)");
            if (reply.Header.Error != 0)
            {
                Assert.That(reply.Body, Is.Empty, "an error reply has no body");
            }
        }
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A well-framed request of a random opcode with random (often too short) arguments and names.</summary>
    private static byte[] Plausible(Random random, FuseOpcode[] opcodes)
    {
        FuseOpcode op = opcodes[random.Next(opcodes.Length)];
        var args = new FuseArgs().Raw(RandomBytes(random, random.Next(0, 96)));
        if (random.Next(2) == 0)
        {
            args.Name("n" + random.Next(1000).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (random.Next(4) == 0)
        {
            args.Name("second");
        }

        ulong unique = (ulong)random.NextInt64(2, long.MaxValue) & ~1UL;
        return FakeKernel.Frame((uint)op, unique, (ulong)random.Next(0, 10), args.ToArray());
    }

    private static byte[] Mutate(Random random, byte[] frame)
    {
        switch (random.Next(5))
        {
            case 0: // flip some bytes anywhere, header included
                for (int k = random.Next(1, 8); k > 0 && frame.Length > 0; k--)
                {
                    frame[random.Next(frame.Length)] ^= (byte)random.Next(1, 256);
                }

                return frame;
            case 1: // truncate
                return frame[..random.Next(0, frame.Length)];
            case 2: // lie about the length
                BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)random.Next());
                return frame;
            case 3: // random extension length
                BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(36), (ushort)random.Next(0, 16));
                return frame;
            default: // append garbage and fix len so only the arguments are odd
                byte[] longer = [.. frame, .. RandomBytes(random, random.Next(1, 64))];
                BinaryPrimitives.WriteUInt32LittleEndian(longer, (uint)longer.Length);
                return longer;
        }
    }
}
