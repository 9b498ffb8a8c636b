using BenchmarkDotNet.Running;

namespace InSpatialFs.Benchmarks;

internal static class Program
{
    /// <summary>dotnet run -c Release -- --filter '*' (BenchmarkDotNet's switcher picks the classes).</summary>
    private static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
