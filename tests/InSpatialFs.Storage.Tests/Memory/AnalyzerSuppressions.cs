using System.Diagnostics.CodeAnalysis;

// Expected values written inline (new[] { ".", "..", "a" }) read as the specification; each runs once per test.
[assembly: SuppressMessage("Performance", "CA1861:Avoid constant arrays as arguments", Justification = "Inline expectations in tests", Scope = "namespaceanddescendants", Target = "~N:InSpatialFs.Storage.Tests.Memory")]
