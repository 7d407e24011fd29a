using System.Runtime.InteropServices;

namespace DeerSharp.Cuda;

/// <summary>Which CUDA library a search is for.</summary>
public enum CudaLibrary
{
    /// <summary>The driver API, libcuda.so.1 (installed with the NVIDIA driver, not the toolkit).</summary>
    Driver,

    /// <summary>The runtime compiler, libnvrtc.so.13 or .12.</summary>
    Nvrtc,

    /// <summary>cuBLAS, libcublas.so.13 or .12.</summary>
    Cublas,
}

/// <summary>
/// Locates the native CUDA libraries without any package: CUDA_PATH and CUDA_HOME; /usr/local/cuda; the NVIDIA wheels of
/// an installed Python (site-packages/nvidia/…/lib); then the loader's default names. The first candidate that loads wins.
/// </summary>
public static class CudaLibraries
{
    /// <summary>The file names tried for a library, newest major version first.</summary>
    public static IReadOnlyList<string> FileNames(CudaLibrary library) => library switch
    {
        CudaLibrary.Driver => ["libcuda.so.1", "libcuda.so"],
        CudaLibrary.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
        _ => ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
    };

    /// <summary>
    /// Every path tried for <paramref name="library"/>, in order: the environment's roots (lib64, lib, targets/…/lib),
    /// /usr/local/cuda, the Python wheels found under <paramref name="pythonRoots"/>, then the bare file names for the
    /// loader's own search. Pure: it reads the environment through <paramref name="environment"/> and the file system
    /// only to list site-packages.
    /// </summary>
    public static IReadOnlyList<string> Candidates(CudaLibrary library, Func<string, string?> environment, IEnumerable<string> pythonRoots)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(pythonRoots);
        var roots = new List<string>();
        foreach (string variable in new[] { "CUDA_PATH", "CUDA_HOME" })
        {
            string? root = environment(variable);
            if (!string.IsNullOrWhiteSpace(root))
            {
                roots.Add(root);
            }
        }

        roots.Add("/usr/local/cuda");
        var result = new List<string>();
        IReadOnlyList<string> names = FileNames(library);
        foreach (string root in roots)
        {
            foreach (string sub in new[] { "lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib" })
            {
                foreach (string name in names)
                {
                    result.Add(Path.Combine(root, sub, name));
                }
            }
        }

        // pip's NVIDIA wheels: nvidia/cuda_nvrtc/lib, nvidia/cublas/lib, and CUDA 13's single nvidia/cu13/lib.
        string[] wheelDirectories = library switch
        {
            CudaLibrary.Driver => [],
            CudaLibrary.Nvrtc => ["nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"],
            _ => ["nvidia/cu13/lib", "nvidia/cublas/lib"],
        };
        foreach (string site in pythonRoots)
        {
            foreach (string wheel in wheelDirectories)
            {
                foreach (string name in names)
                {
                    result.Add(Path.Combine(site, wheel, name));
                }
            }
        }

        result.AddRange(names);
        return result;
    }

    /// <summary>site-packages and dist-packages folders of the Pythons on this machine (PYTHONPATH, /usr/lib, /usr/local/lib, ~/.local, a venv).</summary>
    public static IReadOnlyList<string> PythonSitePackages()
    {
        var found = new List<string>();
        string? pythonPath = Environment.GetEnvironmentVariable("PYTHONPATH");
        if (!string.IsNullOrEmpty(pythonPath))
        {
            found.AddRange(pythonPath.Split(':', StringSplitOptions.RemoveEmptyEntries));
        }

        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string? venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        foreach (string? prefix in new[] { venv is null ? null : Path.Combine(venv, "lib"), "/usr/local/lib", "/usr/lib", "/opt/conda/lib", Path.Combine(home, ".local/lib") })
        {
            if (prefix is null || !Directory.Exists(prefix))
            {
                continue;
            }

            try
            {
                foreach (string python in Directory.EnumerateDirectories(prefix, "python3*"))
                {
                    foreach (string kind in new[] { "site-packages", "dist-packages" })
                    {
                        string path = Path.Combine(python, kind);
                        if (Directory.Exists(path))
                        {
                            found.Add(path);
                        }
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // An unreadable prefix is simply not searched.
            }
        }

        return found;
    }

    /// <summary>
    /// Loads the first candidate that the loader accepts. Returns false, with every path tried and why the last failed,
    /// when none does.
    /// </summary>
    public static bool TryLoad(CudaLibrary library, out IntPtr handle, out string loadedFrom, out string whyNot)
    {
        IReadOnlyList<string> candidates = Candidates(library, Environment.GetEnvironmentVariable, PythonSitePackages());
        string last = "";
        foreach (string candidate in candidates)
        {
            bool bare = !candidate.Contains('/', StringComparison.Ordinal);
            if (!bare && !File.Exists(candidate))
            {
                continue;
            }

            try
            {
                handle = NativeLibrary.Load(candidate);
                loadedFrom = candidate;
                whyNot = "";
                return true;
            }
            catch (DllNotFoundException e)
            {
                last = e.Message.Contains("cannot open shared object file", StringComparison.Ordinal) ? "" : e.Message;
            }
            catch (BadImageFormatException e)
            {
                last = e.Message;
            }
        }

        handle = IntPtr.Zero;
        loadedFrom = "";
        whyNot = $"{FileNames(library)[0]} was not found (tried CUDA_PATH, CUDA_HOME, /usr/local/cuda, Python's NVIDIA wheels and the loader's default search"
                 + (last.Length > 0 ? $"; the loader said: {last.ReplaceLineEndings(" ")}" : "") + ")";
        return false;
    }
}
