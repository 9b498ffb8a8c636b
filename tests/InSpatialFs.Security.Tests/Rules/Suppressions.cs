using System.Diagnostics.CodeAnalysis;

// Expected values written inline read as the specification; these tests are not a hot path.
[assembly: SuppressMessage("Performance", "CA1861:Avoid constant arrays as arguments", Scope = "namespaceanddescendants", Target = "~N:InSpatialFs.Security.Tests.Rules", Justification = "Inline expectations in tests")]
